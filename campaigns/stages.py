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
statement per batch. Each of them then refreshes the funnel summary (campaigns.summary) of the subscribers it
touched, in the same transaction and one statement: the reports read the summary, never the interactions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, DateTimeField, F, Q, Value, When
from django.db.models.functions import Cast, Coalesce, TruncDate

from accounts import kinds
from accounts.models import Interaction, Subscriber

from .models import FunnelSettings
from .summary import summary_refresh

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


class Engagement(NamedTuple):
    at: datetime
    content_id: Any = None  # the engaging content and push, as the tracked link carried them (checked here)
    push_id: Any = None


def _advance_sql(stage: str) -> str:
    """`_advance` in SQL (our own constants only)."""
    earlier = ", ".join(f"'{s}'" for s in ORDER[: ORDER.index(stage)])
    return f"CASE WHEN s.stage IN ({earlier}) THEN '{stage}' ELSE s.stage END"


def _update_from(sets: str, condition: str, columns: Mapping[str, tuple[str, Mapping[int, Any]]]) -> int:
    """PostgreSQL: one UPDATE accounts_subscriber AS s ... FROM unnest(arrays) AS v(id, <columns>) for a batch, a
    value per subscriber and column (the set-based form of `_each`, without a CASE per subscriber to compile)."""
    ids = sorted(next(iter(columns.values()))[1])
    names = ", ".join(columns)
    arrays = ", ".join(f"%s::{sql_type}[]" for sql_type, _values in columns.values())
    params: list[Any] = [ids, *([values[pk] for pk in ids] for _sql_type, values in columns.values())]
    sql = (
        f"UPDATE accounts_subscriber AS s SET {sets} "  # noqa: S608 - our own constants, values as parameters
        f"FROM unnest(%s::bigint[], {arrays}) AS v(id, {names}) WHERE s.id = v.id AND {condition}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _each(values: Mapping[int, Any], output_field: Any) -> Case:
    """A per-subscriber value inside one UPDATE: CASE id WHEN ... THEN ... END."""
    return Case(
        *[
            When(pk=pk, then=Cast(Value(value), output_field) if value is None else Value(value))
            for pk, value in values.items()
        ],
        output_field=output_field,
    )


def stages_follow(*, first_follow: Mapping[int, datetime], refresh: bool = True) -> int:
    """The first follow of each subscriber is kept: later follows (after an unfollow) do not move it. One statement
    for the batch (and the summary's). Returns the rows updated."""
    if not first_follow:
        return 0
    if connection.vendor == "postgresql":
        updated = _update_from("followed_at = v.at", "s.followed_at IS NULL", {"at": ("timestamptz", first_follow)})
    else:
        updated = Subscriber.objects.filter(pk__in=first_follow, followed_at__isnull=True).update(
            followed_at=_each(first_follow, DateTimeField())
        )
    if refresh:
        summary_refresh(subscriber_ids=first_follow)
    return updated


def stages_engage(*, engagements: Mapping[int, Engagement], refresh: bool = True) -> int:
    """Engaged at each subscriber's time unless engaged earlier; the engaging content and push are those of the first
    engagement. Three statements for the batch at most (two check that the content and push still exist)."""
    if not engagements:
        return 0
    contents = _existing("content.Article", {e.content_id for e in engagements.values()})
    pushes = _existing("content.Push", {e.push_id for e in engagements.values()})
    if connection.vendor == "postgresql":
        updated = _update_from(
            f"engaged_at = v.at, engaged_content_id = v.content_id, engaged_push_id = v.push_id, "
            f"stage = {_advance_sql(Stage.ENGAGED)}, followed_at = COALESCE(s.followed_at, s.subscribed_at)",
            "(s.engaged_at IS NULL OR s.engaged_at > v.at)",
            {
                "at": ("timestamptz", {pk: e.at for pk, e in engagements.items()}),
                "content_id": ("bigint", {pk: contents.get(e.content_id) for pk, e in engagements.items()}),
                "push_id": ("bigint", {pk: pushes.get(e.push_id) for pk, e in engagements.items()}),
            },
        )
    else:
        at = _each({pk: e.at for pk, e in engagements.items()}, DateTimeField())
        updated = (
            Subscriber.objects.filter(pk__in=engagements)
            .filter(Q(engaged_at__isnull=True) | Q(engaged_at__gt=at))
            .update(
                engaged_at=at,
                engaged_content_id=_each(
                    {pk: contents.get(e.content_id) for pk, e in engagements.items()}, BigIntegerField()
                ),
                engaged_push_id=_each({pk: pushes.get(e.push_id) for pk, e in engagements.items()}, BigIntegerField()),
                stage=_advance(Stage.ENGAGED),
                followed_at=Coalesce(F("followed_at"), F("subscribed_at")),
            )
        )
    if refresh:
        summary_refresh(subscriber_ids=engagements)
    return updated


def _existing(model: str, pks: set[Any]) -> dict[Any, int]:
    """{the value as given: its primary key} for the values that are the key of an existing row."""
    from django.apps import apps

    wanted: dict[Any, int] = {}
    for value in pks:
        try:
            wanted[value] = int(value)
        except (TypeError, ValueError):
            continue
    if not wanted:
        return {}
    found = set(apps.get_model(model).objects.filter(pk__in=set(wanted.values())).values_list("pk", flat=True))
    return {value: pk for value, pk in wanted.items() if pk in found}


def interactive_times(*, candidates: Mapping[int, list[datetime]], settings: Any) -> dict[int, datetime]:
    """For each subscriber, the earliest of the candidate times at which the interactions of the D days up to it make
    them interactive (N interactions on M different days). One indexed query for the batch (on PostgreSQL it returns
    only the history of the subscribers who have N interactions on M days in the whole span)."""
    if not candidates:
        return {}
    window = timedelta(days=settings.interactive_window_days)
    every = [at for times in candidates.values() for at in times]
    if connection.vendor == "postgresql":
        rows = _history_postgresql(candidates, start=min(every) - window, end=max(every), settings=settings)
    else:
        rows = Interaction.objects.filter(
            subscriber_id__in=candidates,
            kind__in=kinds.SUBSCRIBER_ORIGINATED,
            created_at__gte=min(every) - window,
            created_at__lte=max(every),
        ).values_list("subscriber_id", "created_at", TruncDate("created_at"))
    history: dict[int, list[tuple[datetime, Any]]] = {}
    for subscriber_id, created_at, day in rows:
        history.setdefault(subscriber_id, []).append((created_at, day))
    reached = {}
    for subscriber_id, times in candidates.items():
        own = history.get(subscriber_id, [])
        for at in sorted(times):
            days = [day for created_at, day in own if at - window <= created_at <= at]
            if len(days) >= settings.interactive_min_interactions and len(set(days)) >= settings.interactive_min_days:
                reached[subscriber_id] = at
                break
    return reached


# The history of the subscribers who may be interactive at some candidate time: those with N interactions on M
# days over the whole span (every candidate's D days lie within it); the others, nearly all in a burst of messages,
# are not loaded at all. Days are local dates, as TruncDate gives them.
_HISTORY_SQL = """
    WITH h AS (
        SELECT subscriber_id, created_at, (created_at AT TIME ZONE %(tz)s)::date AS day
        FROM accounts_interaction
        WHERE subscriber_id = ANY(%(ids)s::bigint[]) AND kind = ANY(%(kinds)s::varchar[])
          AND created_at >= %(start)s AND created_at <= %(end)s
    ), possible AS (
        SELECT subscriber_id FROM h GROUP BY subscriber_id
        HAVING count(*) >= %(n)s AND count(DISTINCT day) >= %(m)s
    )
    SELECT h.subscriber_id, h.created_at, h.day FROM h JOIN possible USING (subscriber_id)
"""


def _history_postgresql(candidates: Mapping[int, Any], *, start: datetime, end: datetime, settings: Any) -> list:
    from django.utils import timezone

    params = {"tz": timezone.get_current_timezone_name(), "ids": sorted(candidates),
              "kinds": sorted(kinds.SUBSCRIBER_ORIGINATED), "start": start, "end": end,
              "n": settings.interactive_min_interactions, "m": settings.interactive_min_days}  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(_HISTORY_SQL, params)
        return cursor.fetchall()


def stages_interact(*, reached: Mapping[int, datetime], refresh: bool = True) -> int:
    """Interactive at each subscriber's time unless interactive earlier. One statement for the batch (and the
    summary's)."""
    if not reached:
        return 0
    if connection.vendor == "postgresql":
        updated = _update_from(
            f"interactive_at = v.at, stage = {_advance_sql(Stage.INTERACTIVE)}, "
            "followed_at = COALESCE(s.followed_at, s.subscribed_at)",
            "(s.interactive_at IS NULL OR s.interactive_at > v.at)",
            {"at": ("timestamptz", reached)},
        )
    else:
        at = _each(reached, DateTimeField())
        updated = (
            Subscriber.objects.filter(pk__in=reached)
            .filter(Q(interactive_at__isnull=True) | Q(interactive_at__gt=at))
            .update(
                interactive_at=at,
                stage=_advance(Stage.INTERACTIVE),
                followed_at=Coalesce(F("followed_at"), F("subscribed_at")),
            )
        )
    if refresh:
        summary_refresh(subscriber_ids=reached)
    return updated


def stages_convert(*, first_conversion: Mapping[int, datetime]) -> int:
    """Subscribers converted at the given times (the earliest conversion per subscriber is kept): one UPDATE ... FROM
    VALUES for the whole batch. Returns the rows updated."""
    if not first_conversion:
        return 0
    if connection.vendor != "postgresql":
        updated = _stages_convert_portable(first_conversion)
        summary_refresh(subscriber_ids=first_conversion)
        return updated
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
        updated = cursor.rowcount
    summary_refresh(subscriber_ids=first_conversion)
    return updated


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


def stages_on_follows(interactions: Sequence[Interaction]) -> None:
    """Follows: each subscriber's first follow of the batch, unless an earlier one is kept."""
    first: dict[int, datetime] = {}
    for interaction in interactions:
        sid = interaction.subscriber_id
        if sid and (sid not in first or interaction.created_at < first[sid]):
            first[sid] = interaction.created_at
    stages_follow(first_follow=first)


def stages_on_interactions(interactions: Sequence[Interaction]) -> None:
    """Engaged on a tracked-link click (or a menu click); interactive when the rule is met. No query at all when
    every subscriber reached both already (the subscriber rows come with the interactions); otherwise a few
    statements for the whole batch."""
    engaging: dict[int, list[Interaction]] = {}
    interacting: dict[int, list[datetime]] = {}
    for interaction in interactions:  # oldest first
        subscriber = interaction.subscriber
        if subscriber is None:
            continue
        at = interaction.created_at
        if (interaction.kind in kinds.ENGAGING or interaction.kind in kinds.MENU_CLICKS) and (
            subscriber.engaged_at is None or subscriber.engaged_at > at
        ):
            engaging.setdefault(subscriber.pk, []).append(interaction)
        if interaction.kind in kinds.SUBSCRIBER_ORIGINATED and (
            subscriber.interactive_at is None or subscriber.interactive_at > at
        ):
            interacting.setdefault(subscriber.pk, []).append(at)
    if not engaging and not interacting:
        return
    settings = funnel_settings()
    engagements = {}
    for subscriber_id, candidates in engaging.items():
        counted = [i for i in candidates if i.kind in kinds.ENGAGING or settings.menu_click_engages]
        if counted:  # the first engagement
            data = counted[0].data or {}
            engagements[subscriber_id] = Engagement(counted[0].created_at, data.get("content_id"), data.get("push_id"))
    reached = interactive_times(candidates=interacting, settings=settings)
    stages_engage(engagements=engagements, refresh=False)
    stages_interact(reached=reached, refresh=False)
    summary_refresh(subscriber_ids={*engagements, *reached})


def stages_backfill() -> int:
    """Subscribers imported without a follow event (sync_followers) get their first follow from WeChat's
    subscribe_time. Returns the rows updated."""
    pending = Subscriber.objects.filter(followed_at__isnull=True, subscribed_at__isnull=False)
    updated = 0
    while ids := list(pending.order_by("pk").values_list("pk", flat=True)[:10_000]):
        with transaction.atomic():
            updated += pending.filter(pk__in=ids).update(followed_at=F("subscribed_at"))
            summary_refresh(subscriber_ids=ids)
    return updated


__all__ = [
    "ORDER",
    "STAGE_FIELDS",
    "Engagement",
    "funnel_settings",
    "interactive_times",
    "stages_backfill",
    "stages_convert",
    "stages_engage",
    "stages_follow",
    "stages_interact",
    "stages_on_follows",
    "stages_on_interactions",
]
