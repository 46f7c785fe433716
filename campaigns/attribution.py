"""Attribution of conversions, right whatever order things are processed in.

A conversion stores its first-touch channel (the subscriber's source channel: the channel of their first follow) and
its last-touch push and content (the push and content of the last tracked link with a push the person opened at or
before the conversion: a click, or a forwarded link opened before following). Each is derived from facts that may be
processed after the conversion is written:

- the channel is set on the subscriber by the follow's follow-up (campaigns.services.channels_attribute), batched in
  Celery, while a shop may post the purchase a second after the follow;
- a click may be recorded a moment after a conversion that happened later (or credited to its person later).

So each is filled in when the conversion is written, from what is known then (conversions_record), and again, set
based, when the fact arrives: the follow's follow-up fills the subscriber's conversions that still lack a channel and
re-derives their last touch (conversions_attribute), a click's follow-up re-derives the last touch of the
subscriber's conversions at or after it (conversions_reattribute_clicked). conversions_backfill fixes rows stored
before this existed (manage.py attribution_backfill). The stored columns are what the reports read.

Writers lock the subscriber row first (conversions_record reads its subscribers FOR UPDATE; the follow's follow-up
updates the subscriber before it fills the conversions, in the same transaction), so a conversion written while the
follow is processed is either seen by the fill or sees the channel itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Cast, Coalesce

from accounts.models import Interaction
from content.models import Article, Push

from .models import Channel, Conversion


class LastTouch(NamedTuple):
    push_id: int | None
    content_id: int | None


# The person opened a tracked link: as a follower ("link_click"), or before following, a link forwarded to them
# ("link_forward", known through web authorisation).
TOUCH_KINDS = (Interaction.Kind.LINK_CLICK, Interaction.Kind.LINK_FORWARD)


def last_clicked_pushes(*, pairs: Sequence[tuple[int, datetime]]) -> dict[tuple[int, datetime], tuple[Any, Any]]:
    """For each (subscriber, time): the push and content of the last tracked link with a push the subscriber opened
    before that time (a click, or a forward opened before following), as the link carried them (text). One query for
    the whole batch (a LATERAL lookup per pair on the subscriber's interactions index)."""
    if not pairs:
        return {}
    if connection.vendor != "postgresql":
        return _last_clicked_pushes_portable(pairs)
    values = ", ".join(["(%s::bigint, %s::timestamptz)"] * len(pairs))
    params: list[Any] = [x for pair in pairs for x in pair]
    kinds = ", ".join(f"'{kind}'" for kind in TOUCH_KINDS)
    sql = f"""
        SELECT v.sub, v.at, last.push_id, last.content_id
        FROM (VALUES {values}) AS v(sub, at)
        CROSS JOIN LATERAL (
            SELECT i.data->>'push_id' AS push_id, i.data->>'content_id' AS content_id
            FROM accounts_interaction i
            WHERE i.subscriber_id = v.sub AND i.created_at <= v.at AND i.kind IN ({kinds})
              AND i.data->>'push_id' IS NOT NULL
            ORDER BY i.created_at DESC LIMIT 1
        ) AS last
    """  # noqa: S608 (only placeholders and constants)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(sub, at): (push, content) for sub, at, push, content in cursor.fetchall()}


def _last_clicked_pushes_portable(pairs: Sequence[tuple[int, datetime]]) -> dict[tuple[int, datetime], tuple]:
    """The embedded default (SQLite has no LATERAL): one indexed query per pair."""
    result = {}
    for sub, at in pairs:
        clicks = Interaction.objects.filter(subscriber_id=sub, created_at__lte=at, kind__in=TOUCH_KINDS)
        for data in clicks.order_by("-created_at").values_list("data", flat=True).iterator():
            data = data if isinstance(data, dict) else {}
            if data.get("push_id") is not None:  # as PostgreSQL's data->>'push_id': text, JSON null is NULL
                content = data.get("content_id")
                result[(sub, at)] = (str(data["push_id"]), None if content is None else str(content))
                break
    return result


def _existing_ids(model: Any, ids: set[Any]) -> set[int]:
    clean = {int(x) for x in ids if x is not None and str(x).isdigit()}
    return set(model.objects.filter(pk__in=clean).values_list("pk", flat=True)) if clean else set()


def last_touches(*, pairs: Sequence[tuple[int, datetime]]) -> dict[tuple[int, datetime], LastTouch]:
    """For each (subscriber, time): the last-touch push and content (ids of rows that still exist). Three queries for
    the whole batch at most."""
    clicks = last_clicked_pushes(pairs=pairs)
    push_ids = _existing_ids(Push, {push for push, _content in clicks.values()})
    content_ids = _existing_ids(Article, {content for _push, content in clicks.values()})
    touches = {}
    for pair, (push, content) in clicks.items():
        touches[pair] = LastTouch(
            int(push) if push and str(push).isdigit() and int(push) in push_ids else None,
            int(content) if content and str(content).isdigit() and int(content) in content_ids else None,
        )
    return touches


def subscribers_for_attribution(queryset: Any) -> Any:
    """The subscriber rows conversions_record needs, with `scene_channel_id`: the channel named by the scene of their
    first follow, which the follow's follow-up makes their source channel (the first-touch channel as known while that
    follow-up has not run yet). Locked until the end of the transaction: the follow's follow-up, which sets the source
    channel and then fills the subscriber's conversions, waits for it, or this waits for the follow-up and reads its
    channel."""
    scene_channel = Channel.objects.filter(scene_str=OuterRef("source_scene")).values("pk")[:1]
    return (
        queryset.select_for_update(of=("self",))
        .only("id", "openid", "unionid", "source_channel_id", "source_scene")
        .annotate(scene_channel_id=Subquery(scene_channel, output_field=BigIntegerField()))
        .order_by("pk")  # locks taken in one order by every batch
    )


# --- Filling in later ----------------------------------------------------------------------------------------------


def _each(values: Mapping[int, int | None]) -> Case:
    """A per-conversion value inside one UPDATE: CASE id WHEN ... THEN ... END."""
    return Case(
        *[
            When(pk=pk, then=Cast(Value(value), BigIntegerField()) if value is None else Value(value))
            for pk, value in values.items()
        ],
        output_field=BigIntegerField(),
    )


def _reattribute(rows: Sequence[tuple[int, int, datetime, int | None, int | None, int | None, int | None]]) -> int:
    """Rows (conversion id, subscriber id, occurred_at, channel, push, content, the subscriber's source channel):
    the channel filled from the source channel when missing, the last touch derived again. One UPDATE for the rows
    whose values change (none when nothing changes). Returns how many changed."""
    touches = last_touches(pairs=[(sub, at) for _pk, sub, at, *_rest in rows])
    changed: dict[int, tuple[int | None, int | None, int | None]] = {}
    for pk, sub, at, channel, push, content, source_channel in rows:
        touch = touches.get((sub, at), LastTouch(None, None))
        new = (channel or source_channel, touch.push_id, touch.content_id)
        if new != (channel, push, content):
            changed[pk] = new
    if changed:
        _update(changed)
    return len(changed)


def _update(changed: Mapping[int, tuple[int | None, int | None, int | None]]) -> None:
    """Set (channel, push, content) per conversion id in one statement. A channel once set is never taken away (a
    concurrent fill may have set it since the rows were read)."""
    if connection.vendor != "postgresql":  # the embedded default: CASE id WHEN ... per column
        Conversion.objects.filter(pk__in=changed).update(
            channel_id=Coalesce(F("channel_id"), _each({pk: v[0] for pk, v in changed.items()})),
            push_id=_each({pk: v[1] for pk, v in changed.items()}),
            content_id=_each({pk: v[2] for pk, v in changed.items()}),
        )
        return
    values = ", ".join(["(%s::bigint, %s::bigint, %s::bigint, %s::bigint)"] * len(changed))
    params = [x for pk, new in changed.items() for x in (pk, *new)]
    sql = f"""
        UPDATE campaigns_conversion AS c
        SET channel_id = COALESCE(c.channel_id, v.channel), push_id = v.push, content_id = v.content
        FROM (VALUES {values}) AS v(id, channel, push, content)
        WHERE c.id = v.id
    """  # noqa: S608 (only placeholders)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


_ROW = ("pk", "subscriber_id", "occurred_at", "channel_id", "push_id", "content_id", "subscriber__source_channel_id")


def conversions_attribute(*, subscriber_ids: Collection[int]) -> int:
    """The follow's part (a follow-up of follows, after the channel attribution): the subscribers' conversions that
    lack a channel or a push get the subscriber's source channel and their last touch derived again. One indexed
    query when none of them converted (most follows); a few for the batch otherwise. Safe to run twice. Returns how
    many conversions changed."""
    if not subscriber_ids:
        return 0
    rows = list(
        Conversion.objects.filter(subscriber_id__in=set(subscriber_ids))
        .filter(Q(channel__isnull=True) | Q(push__isnull=True))
        .values_list(*_ROW)
    )
    return _reattribute(rows) if rows else 0


def conversions_reattribute_clicked(*, clicked: Mapping[int, datetime]) -> int:
    """A click's part (a follow-up of tracked-link clicks): {subscriber id: their earliest click of the batch}; the
    conversions at or after it may have a new last touch. One indexed query when none (nearly every click)."""
    if not clicked:
        return 0
    after = Q()
    for subscriber_id, at in clicked.items():
        after |= Q(subscriber_id=subscriber_id, occurred_at__gte=at)
    rows = list(Conversion.objects.filter(after).values_list(*_ROW))
    return _reattribute(rows) if rows else 0


class BackfillResult(NamedTuple):
    examined: int
    changed: int
    last_id: int


def conversions_backfill(*, batch_size: int = 1000, after_id: int = 0, everything: bool = False) -> BackfillResult:
    """Conversions stored before attribution was filled in later (their channel lost to a fast purchase): by batches
    of ids, each in its own short transaction, those lacking a channel or a push (`everything`: all of them) get the
    subscriber's source channel and their last touch derived again. Idempotent; resumable from `after_id`."""
    examined = changed = 0
    last_id = after_id
    while True:
        with transaction.atomic():
            batch = Conversion.objects.filter(pk__gt=last_id).order_by("pk")
            if not everything:
                batch = batch.filter(Q(channel__isnull=True) | Q(push__isnull=True))
            rows = list(batch.values_list(*_ROW)[:batch_size])
            if not rows:
                return BackfillResult(examined, changed, last_id)
            changed += _reattribute(rows)
        examined += len(rows)
        last_id = rows[-1][0]
