"""Reads of subscribers and interactions that are more than a get by key."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from .models import Interaction, Subscriber, Tag


def interactions_pending(*, received_before: datetime, limit: int) -> list[int]:
    """Ids of interactions whose follow-ups have not run, oldest first (uses the partial pending index)."""
    return list(
        Interaction.objects.filter(processed_at__isnull=True, received_at__lt=received_before)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )


def subscribers_list() -> QuerySet[Subscriber]:
    return Subscriber.objects.order_by("-id")


def interactions_list() -> QuerySet[Interaction]:
    return Interaction.objects.select_related("subscriber").order_by("-created_at", "-id")


def tags_list() -> QuerySet[Tag]:
    """Tags by name, with `subscriber_count` (a correlated count per tag)."""
    through = Subscriber.tags.through
    counts = (
        through.objects.filter(tag_id=OuterRef("pk"))
        .order_by()
        .values("tag_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return Tag.objects.annotate(subscriber_count=Coalesce(Subquery(counts, output_field=IntegerField()), 0)).order_by(
        "name"
    )
