"""The funnel's stages, defined in one place with their settings (FunnelSettings), and their incremental
maintenance on the subscribers' stage columns (accounts.Subscriber).

    followed     the first follow (Subscriber.followed_at)
    engaged      opened tracked content (a "link_click" interaction) or, if the settings say so, clicked a menu
                 ("click" / "view" events)
    interactive  at least N subscriber-originated interactions on at least M different days within D days
                 (FunnelSettings, default 3 / 2 / 30)
    converted    any conversion (Conversion)

Each reached stage keeps the first time it was reached (`<stage>_at`, never cleared) and `stage` is the furthest one
reached: stages only move forward. The follow-ups below run in Celery after the callback (or the link redirect)
commits its interaction, each with one or two small indexed statements; conversions update stages in one
statement per batch. Reports read these columns, never the interactions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, TruncDate

from accounts import kinds
from accounts.models import Interaction, Subscriber

from .models import FunnelSettings

logger = logging.getLogger(__name__)

Stage = Subscriber.Stage
ORDER: tuple[str, ...] = (Stage.FOLLOWED, Stage.ENGAGED, Stage.INTERACTIVE, Stage.CONVERTED)
STAGE_FIELDS: dict[str, str] = {
    Stage.FOLLOWED: "followed_at",
    Stage.ENGAGED: "engaged_at",
    Stage.INTERACTIVE: "interactive_at",
    Stage.CONVERTED: "converted_at",
}


def funnel_settings() -> FunnelSettings:
    return FunnelSettings.objects.get_or_create(pk=1)[0]


def _advance(stage: str) -> Case:
    """`stage` moves to the given one only if it is further: stages never go back."""
    earlier = list(ORDER[: ORDER.index(stage)])
    return Case(When(stage__in=earlier, then=Value(stage)), default=F("stage"))


def stage_follow(*, subscriber_id: int, at: datetime) -> None:
    """The first follow is kept: later follows (after an unfollow) do not move it."""
    Subscriber.objects.filter(pk=subscriber_id, followed_at__isnull=True).update(followed_at=at)


def stage_engage(*, subscriber_id: int, at: datetime, content_id: int | None = None, push_id: int | None = None):
    """Engaged at `at` unless engaged earlier; the engaging content and push are those of the first engagement."""
    updated = Subscriber.objects.filter(Q(engaged_at__isnull=True) | Q(engaged_at__gt=at), pk=subscriber_id).update(
        engaged_at=at,
        engaged_content_id=_existing("content.Article", content_id),
        engaged_push_id=_existing("content.Push", push_id),
        stage=_advance(Stage.ENGAGED),
        followed_at=Coalesce(F("followed_at"), F("subscribed_at")),
    )
    return bool(updated)


def _existing(model: str, pk: Any) -> int | None:
    from django.apps import apps

    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return pk if apps.get_model(model).objects.filter(pk=pk).exists() else None


def interactive_reached(*, subscriber_id: int, at: datetime, settings: Any) -> bool:
    """Whether the interactions in the D days up to `at` make the subscriber interactive (one indexed query)."""
    rows = Interaction.objects.filter(
        subscriber_id=subscriber_id,
        kind__in=kinds.SUBSCRIBER_ORIGINATED,
        created_at__gte=at - timedelta(days=settings.interactive_window_days),
        created_at__lte=at,
    ).values_list(TruncDate("created_at"), flat=True)
    days = list(rows[:10000])
    return len(days) >= settings.interactive_min_interactions and len(set(days)) >= settings.interactive_min_days


def stage_interact(*, subscriber_id: int, at: datetime, settings: Any = None) -> bool:
    settings = settings or funnel_settings()
    if not interactive_reached(subscriber_id=subscriber_id, at=at, settings=settings):
        return False
    updated = Subscriber.objects.filter(
        Q(interactive_at__isnull=True) | Q(interactive_at__gt=at), pk=subscriber_id
    ).update(
        interactive_at=at,
        stage=_advance(Stage.INTERACTIVE),
        followed_at=Coalesce(F("followed_at"), F("subscribed_at")),
    )
    return bool(updated)


def stages_convert(*, first_conversion: Mapping[int, datetime]) -> int:
    """Subscribers converted at the given times (the earliest conversion per subscriber is kept): one UPDATE ... FROM
    VALUES for the whole batch. Returns the rows updated."""
    if not first_conversion:
        return 0
    if connection.vendor != "postgresql":
        return _stages_convert_portable(first_conversion)
    values = ", ".join(["(%s::bigint, %s::timestamptz)"] * len(first_conversion))
    params = [x for pair in first_conversion.items() for x in pair]
    earlier = ", ".join(f"'{stage}'" for stage in ORDER[:-1])
    # Only placeholders and our own constants are formatted into the statement.
    sql = f"""
        UPDATE accounts_subscriber AS s
        SET converted_at = LEAST(COALESCE(s.converted_at, v.at), v.at),
            stage = CASE WHEN s.stage IN ({earlier}) THEN '{Stage.CONVERTED}' ELSE s.stage END,
            followed_at = COALESCE(s.followed_at, s.subscribed_at)
        FROM (VALUES {values}) AS v(id, at)
        WHERE s.id = v.id
    """  # noqa: S608 (only placeholders and constants)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _stages_convert_portable(first_conversion: Mapping[int, datetime]) -> int:
    """The embedded default (SQLite): the same update, one statement per subscriber."""
    updated = 0
    for subscriber_id, at in first_conversion.items():
        updated += Subscriber.objects.filter(pk=subscriber_id).update(
            converted_at=Case(When(converted_at__lt=at, then=F("converted_at")), default=Value(at)),
            stage=Case(When(stage__in=ORDER[:-1], then=Value(Stage.CONVERTED)), default=F("stage")),
            followed_at=Coalesce(F("followed_at"), F("subscribed_at")),
        )
    return updated


# --- Follow-ups (campaigns.events) -------------------------------------------------------------------------------


def on_follow(interaction: Interaction) -> None:
    if interaction.subscriber_id:
        stage_follow(subscriber_id=interaction.subscriber_id, at=interaction.created_at)


def on_subscriber_interaction(interaction: Interaction) -> None:
    """Engaged on a tracked-link click (or a menu click); interactive when the rule is met. Cheap when both are
    already reached: no query at all (the subscriber row comes with the interaction)."""
    subscriber = interaction.subscriber
    if subscriber is None:
        return
    settings = None
    engaging = interaction.kind in kinds.ENGAGING or interaction.kind in kinds.MENU_CLICKS
    if engaging and (subscriber.engaged_at is None or subscriber.engaged_at > interaction.created_at):
        settings = funnel_settings()
        if interaction.kind in kinds.ENGAGING or settings.menu_click_engages:
            data = interaction.data or {}
            stage_engage(
                subscriber_id=subscriber.pk,
                at=interaction.created_at,
                content_id=data.get("content_id"),
                push_id=data.get("push_id"),
            )
    if interaction.kind in kinds.SUBSCRIBER_ORIGINATED and (
        subscriber.interactive_at is None or subscriber.interactive_at > interaction.created_at
    ):
        stage_interact(subscriber_id=subscriber.pk, at=interaction.created_at, settings=settings)


def stages_backfill() -> int:
    """Subscribers imported without a follow event (sync_followers) get their first follow from WeChat's
    subscribe_time. Returns the rows updated."""
    return Subscriber.objects.filter(followed_at__isnull=True, subscribed_at__isnull=False).update(
        followed_at=F("subscribed_at")
    )


__all__ = [
    "ORDER",
    "STAGE_FIELDS",
    "funnel_settings",
    "on_follow",
    "on_subscriber_interaction",
    "stage_engage",
    "stage_follow",
    "stage_interact",
    "stages_backfill",
    "stages_convert",
]
