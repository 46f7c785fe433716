"""Changes of state for subscribers and interactions.

The callback's hot path is here: each `interaction_record_*` upserts the subscriber (one statement, ON CONFLICT;
for a message with follow-ups only a lookup of a subscriber we hold, see interaction_record_message) and inserts the
interaction (one statement, ON CONFLICT (dedupe_key) DO NOTHING) in one transaction. A retry or a
concurrent duplicate inserts nothing and gets the reply stored with the first copy. The statements are written for
PostgreSQL and also run on SQLite (the embedded default), which both support INSERT ... ON CONFLICT ... RETURNING.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Jsonb

from . import outbox
from .models import FollowEvent, Interaction, Subscriber
from .record_sql import (
    _FOLLOW,
    _LINK,
    _SUBSCRIBER_PARAMS,
    _TOUCH,
    _UNFOLLOW,
    INTERACTION_ATTRIBUTES,
    Statement,
    _follow_kind,
    _insert_statement,
    _interaction_values,
    _pg_execute,
    _pg_record_sql,
    _subscriber_conflict_clause,
    _subscriber_values,
)

if TYPE_CHECKING:
    from wechat_crm.wechat.inbound import InboundMessage

__all__ = [
    "INTERACTION_ATTRIBUTES",
    "Recorded",
    "Statement",
    "interaction_record_follow",
    "interaction_record_message",
    "interaction_record_report",
    "interaction_record_system_event",
    "interaction_record_unfollow",
    "subscribers_touch",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recorded:
    interaction_id: int
    created: bool
    reply: str


# --- Recording ------------------------------------------------------------------------------------------------------


def _insert_all_postgresql(
    *,
    message: InboundMessage,
    reply: str,
    has_follow_ups: bool,
    effect: str | None,
    now: datetime,
    subscriber_id: int | None = None,
) -> int | None:
    """One statement, one round trip: upsert the subscriber (with _LINK: look it up), insert the interaction, insert
    the follow event. With _LINK and an openid we do not hold, a second statement (_TOUCH's) creates the subscriber.

    Returns the new interaction's id, or None when the dedupe key already exists (nothing inserted).
    """
    params: dict[str, Any] = {"now": now}
    if effect is not None:
        subscriber = _subscriber_values(
            openid=message.openid, effect=effect, at=message.created_at, scene=message.scene
        )
        for name in _SUBSCRIBER_PARAMS[effect]:
            params["s_" + name] = subscriber[name]
    interaction = _interaction_values(
        message=message, subscriber_id=subscriber_id, reply=reply, has_follow_ups=has_follow_ups
    )
    interaction["data"] = Jsonb(interaction["data"])
    for name, value in interaction.items():
        params["i_" + name] = value
    attributes = tuple(name for name in INTERACTION_ATTRIBUTES if name in interaction)
    follow_kind = _follow_kind(effect)
    if follow_kind is not None:
        params.update(f_kind=str(follow_kind), f_at=message.created_at, f_scene=message.scene)
    row = _pg_execute(lambda: _pg_record_sql(effect, attributes), params)
    if effect == _LINK and row[1] is None:  # an openid we do not hold: _TOUCH's statement creates its subscriber
        return _insert_all_postgresql(message=message, reply=reply, has_follow_ups=has_follow_ups, effect=_TOUCH,
                                      now=now)  # fmt: skip
    return row[0] if row else None


def _insert_all_portable(
    *,
    message: InboundMessage,
    reply: str,
    has_follow_ups: bool,
    effect: str | None,
    now: datetime,
    subscriber_id: int | None = None,
) -> int | None:
    """The same as _insert_all_postgresql in up to three statements (SQLite has no data-modifying CTEs)."""
    with transaction.atomic():
        if effect == _LINK:
            subscriber_id = Subscriber.objects.filter(openid=message.openid).values_list("pk", flat=True).first()
            effect = _TOUCH if subscriber_id is None else None  # an openid we do not hold: created and touched
        if effect is not None:
            sql, params = _insert_statement(
                Subscriber,
                _subscriber_values(openid=message.openid, effect=effect, at=message.created_at, scene=message.scene),
                now,
            )
            with connection.cursor() as cursor:
                cursor.execute(sql + _subscriber_conflict_clause(effect, connection.vendor), params)
                subscriber_id = cursor.fetchone()[0]
        sql, params = _insert_statement(
            Interaction,
            _interaction_values(
                message=message, subscriber_id=subscriber_id, reply=reply, has_follow_ups=has_follow_ups
            ),
            now,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql + " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id", params)
            row = cursor.fetchone()
        if row is None:
            return None
        follow_kind = _follow_kind(effect)
        if follow_kind is not None:
            FollowEvent.objects.create(
                subscriber_id=subscriber_id,
                kind=follow_kind,
                at=message.created_at,
                scene=message.scene,
                interaction_id=row[0],
            )
        return row[0]


def _record(
    *, message: InboundMessage, reply: str, has_follow_ups: bool, effect: str | None, subscriber_id: int | None = None
) -> Recorded:
    """Store the interaction; `effect` upserts the subscriber by openid, else `subscriber_id` (or none) is linked."""
    now = timezone.now()
    insert_all = _insert_all_postgresql if connection.vendor == "postgresql" else _insert_all_portable
    interaction_id = insert_all(
        message=message, reply=reply, has_follow_ups=has_follow_ups, effect=effect, now=now, subscriber_id=subscriber_id
    )
    if interaction_id is None:
        # A retry, or a copy that a concurrent request committed first: answer what the first copy answered.
        existing_id, existing_reply = (
            Interaction.objects.filter(dedupe_key=message.dedupe_key).values_list("id", "reply").get()
        )
        return Recorded(interaction_id=existing_id, created=False, reply=existing_reply)
    if has_follow_ups:
        transaction.on_commit(lambda: outbox.submit(interaction_id))
    return Recorded(interaction_id=interaction_id, created=True, reply=reply)


# --- Recorders (the `record` of wechat_crm.wechat.dispatch routes) ---------------------------------------------------


def interaction_record_message(*, message: InboundMessage, reply: str, has_follow_ups: bool = False) -> Recorded:
    """A message or event the subscriber originated: stored, and last_interaction_at moves forward.

    With follow-ups, the subscriber we hold is only looked up, not written, in the request: its last_interaction_at
    moves in the first follow-up (accounts.events.touch), one UPDATE per batch, a moment later. Every decision that
    must see the message at once (WeChat's customer-service window) reads the interactions, not that column. An
    openid we do not hold gets its subscriber here (the interaction's foreign key needs it), touched as before.
    Without follow-ups (nothing would run later) the subscriber's row is touched in the request."""
    effect = _LINK if has_follow_ups else _TOUCH
    return _record(message=message, reply=reply, has_follow_ups=has_follow_ups, effect=effect)


def interaction_record_follow(*, message: InboundMessage, reply: str, has_follow_ups: bool = False) -> Recorded:
    """subscribe: create or reactivate the subscriber; the first follow's scene becomes the source scene."""
    return _record(message=message, reply=reply, has_follow_ups=has_follow_ups, effect=_FOLLOW)


def interaction_record_unfollow(*, message: InboundMessage, reply: str, has_follow_ups: bool = False) -> Recorded:
    """unsubscribe: the subscriber is no longer following (last_interaction_at is not touched)."""
    return _record(message=message, reply=reply, has_follow_ups=has_follow_ups, effect=_UNFOLLOW)


def interaction_record_report(*, message: InboundMessage, reply: str, has_follow_ups: bool = False) -> Recorded:
    """A report about a send to the subscriber (TEMPLATESENDJOBFINISH): linked, but not an interaction by them.

    A report never creates a subscriber: about an openid we do not hold (an erased subscriber's old openid, or one we
    never had) nothing is stored, so that a late report cannot bring back what was erased."""
    subscriber_id = Subscriber.objects.filter(openid=message.openid).values_list("pk", flat=True).first()
    if subscriber_id is None:
        logger.info("wechat report about an unknown subscriber: not stored")
        return Recorded(interaction_id=0, created=False, reply=reply)
    return _record(
        message=message, reply=reply, has_follow_ups=has_follow_ups, effect=None, subscriber_id=subscriber_id
    )


def interaction_record_system_event(*, message: InboundMessage, reply: str, has_follow_ups: bool = False) -> Recorded:
    """An event no subscriber sent (MASSSENDJOBFINISH comes from the mass-send assistant): no subscriber."""
    return _record(message=message, reply=reply, has_follow_ups=has_follow_ups, effect=None)


# --- The touch (the first follow-up of a message) -------------------------------------------------------------------

# Rows locked in id order (two workers' batches that share subscribers lock them in the same order, as the score's
# follow-up does); a row already at or past the time is neither locked nor written.
_TOUCH_SQL = """
    WITH v AS (
        SELECT * FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at)
    ), locked AS (
        SELECT s.id, v.at FROM {subscribers} s JOIN v ON v.id = s.id
        WHERE s.last_interaction_at IS NULL OR s.last_interaction_at < v.at
        ORDER BY s.id FOR UPDATE OF s
    )
    UPDATE {subscribers} AS s SET last_interaction_at = GREATEST(COALESCE(s.last_interaction_at, l.at), l.at),
        updated_at = %s
    FROM locked l WHERE s.id = l.id
"""


def subscribers_touch(*, latest: Mapping[int, datetime]) -> int:
    """Move each subscriber's last_interaction_at forward to `latest[subscriber id]`, never backwards (GREATEST; a
    row already there is not written): run again, or in any order, it changes nothing more. One statement. Returns
    how many rows moved."""
    if not latest:
        return 0
    now = timezone.now()
    if connection.vendor != "postgresql":
        moved = 0
        for pk, at in sorted(latest.items()):
            moved += Subscriber.objects.filter(Q(last_interaction_at__isnull=True) | Q(last_interaction_at__lt=at),
                                               pk=pk).update(last_interaction_at=at, updated_at=now)  # fmt: skip
        return moved
    ids = sorted(latest)
    with connection.cursor() as cursor:
        cursor.execute(
            _TOUCH_SQL.format(subscribers=connection.ops.quote_name(Subscriber._meta.db_table)),
            [ids, [latest[pk] for pk in ids], now],
        )
        return cursor.rowcount
