"""Reads of the inbox that are more than a get by key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import DateTimeField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Interaction

from .models import Conversation
from .services import MESSAGE_KINDS

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def conversations_with_waiting_since() -> QuerySet[Conversation]:
    """Conversations with `waiting_since`: the subscriber's first message after our last reply (their last message
    when none is found), the moment since which an unanswered conversation waits."""
    first_unanswered = (
        Interaction.objects.filter(
            subscriber_id=OuterRef("subscriber_id"),
            kind__in=MESSAGE_KINDS,
            created_at__gt=Coalesce(OuterRef("last_outbound_at"), Value(_EPOCH)),
        )
        .order_by("created_at")
        .values("created_at")[:1]
    )
    return Conversation.objects.select_related("subscriber").annotate(
        waiting_since=Coalesce(Subquery(first_unanswered, output_field=DateTimeField()), "last_inbound_at")
    )


def inbox_summary(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """How many conversations wait for an answer, and the one that has waited longest (with how long)."""
    now = now or timezone.now()
    waiting = conversations_with_waiting_since().filter(unanswered__gt=0)
    oldest = waiting.order_by("waiting_since", "pk").first()
    return {
        "unanswered": waiting.count(),
        "oldest": None
        if oldest is None
        else {
            "conversation": oldest.pk,
            "name": str(oldest.subscriber),
            "messages": oldest.unanswered,
            "since": oldest.waiting_since,
            "waiting_seconds": int((now - oldest.waiting_since).total_seconds()) if oldest.waiting_since else None,
        },
    }
