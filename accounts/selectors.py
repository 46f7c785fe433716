"""Reads of subscribers and interactions that are more than a get by key."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import kinds
from .models import FollowEvent, Interaction, Subscriber, Tag


def interactions_pending(*, received_before: datetime, limit: int) -> list[int]:
    """Ids of interactions whose follow-ups have not run, oldest first (uses the partial pending index)."""
    return list(
        Interaction.objects.filter(processed_at__isnull=True, received_at__lt=received_before)
        .order_by("received_at")
        .values_list("id", flat=True)[:limit]
    )


def touches_pending(*, since: datetime) -> QuerySet[Interaction]:
    """Interactions created since `since` that have not moved their subscriber's last_interaction_at yet: of the
    kinds whose follow-ups move it (kinds.TOUCHED_LATER), still pending. A subscriber's last interaction is the later
    of last_interaction_at and these; there are none once the follow-ups ran (a moment after the message). Filter
    them by subscriber (interaction_sub_created_idx) or let PostgreSQL read the few pending rows (the partial index
    interaction_pending_idx)."""
    return Interaction.objects.filter(processed_at__isnull=True, kind__in=kinds.TOUCHED_LATER, created_at__gte=since)


def touch_pending(since: datetime) -> Exists:
    """For a subscribers queryset: the subscriber has a message since `since` whose follow-ups have not moved its
    last_interaction_at yet (touches_pending)."""
    return Exists(touches_pending(since=since).filter(subscriber_id=OuterRef("pk")))


def interacted_since(since: datetime) -> Q:
    """Subscribers whose last interaction is at or after `since`, counting the messages whose follow-ups have not
    run yet (touch_pending). Its negation with last_interaction_at__lt is "silent since"."""
    return Q(last_interaction_at__gte=since) | Q(touch_pending(since))


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


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The start of `day` and of the next day in the current time zone (Asia/Shanghai by default)."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)


def followers_day(*, day: date) -> dict[str, int]:
    """Follows (`new`), unfollows (`lost`) and their difference (`net`) during `day`, from the follow history: a
    subscriber who follows twice counts twice, as WeChat's own statistics do."""
    start, end = day_bounds(day)
    counts = FollowEvent.objects.filter(at__gte=start, at__lt=end).aggregate(
        new=Count("id", filter=Q(kind=FollowEvent.Kind.FOLLOW)),
        lost=Count("id", filter=Q(kind=FollowEvent.Kind.UNFOLLOW)),
    )
    return {"new": counts["new"], "lost": counts["lost"], "net": counts["new"] - counts["lost"]}


def followers_today(*, now: datetime | None = None) -> dict[str, Any]:
    """Today's follows, unfollows and net against the same weekday a week earlier."""
    today = timezone.localdate(now or timezone.now())
    last_week = today - timedelta(days=7)
    return {
        "day": today,
        "today": followers_day(day=today),
        "last_week_day": last_week,
        "last_week": followers_day(day=last_week),
    }
