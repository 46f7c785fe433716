"""The SQL of the callback's hot path (accounts.services): the statements that upsert the subscriber and insert the
interaction (and its follow event) in one round trip, built once per process from the models.

PostgreSQL gets one statement with data-modifying CTEs, server-side prepared (_pg_record_sql, _pg_execute); SQLite
gets the same in up to three statements (_insert_statement, _subscriber_conflict_clause).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
import psycopg.sql
from django.db import OperationalError, connection, models

from .models import FollowEvent, Interaction, Subscriber

if TYPE_CHECKING:
    from wechat_crm.wechat.inbound import InboundMessage

# Typed Interaction columns filled from InboundMessage.attributes (same names).
INTERACTION_ATTRIBUTES = (
    "content",
    "media_id",
    "thumb_media_id",
    "pic_url",
    "format",
    "title",
    "description",
    "url",
    "latitude",
    "longitude",
    "precision",
    "scale",
    "label",
    "ticket",
    "status",
)


class Statement(NamedTuple):
    sql: str
    params: list[Any]


# --- SQL helpers ---------------------------------------------------------------------------------------------------


def _default(field: models.Field) -> Any:
    """The value Django would insert for a column not given (a relation without default is NULL)."""
    if field.is_relation and not field.has_default():
        return None
    return field.get_default()


def _insert_statement(
    model: type[models.Model], values: dict[str, Any], now: datetime, *, expressions: dict[str, str] | None = None
) -> Statement:
    """`INSERT INTO table (every concrete column) VALUES (...)` with the model's defaults for the columns not given.

    `expressions` gives raw SQL for some columns (e.g. a subquery); everything else is passed as parameters.
    """
    expressions = expressions or {}
    columns, placeholders, params = [], [], []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.generated:  # PostgreSQL computes generated columns (Subscriber.*_delay_us)
            continue
        columns.append(connection.ops.quote_name(f.column))
        if f.attname in expressions:
            placeholders.append(expressions[f.attname])
            continue
        if f.attname in values:
            value = values[f.attname]
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = _default(f)
        placeholders.append("%s")
        params.append(f.get_db_prep_save(value, connection))
    table = connection.ops.quote_name(model._meta.db_table)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(placeholders)})"  # noqa: S608 - identifiers from the model, values as parameters
    return Statement(sql, params)


def _greatest() -> str:
    return "GREATEST" if connection.vendor == "postgresql" else "MAX"


def _later(column: str, table: str) -> str:
    """SQL for max(existing, excluded) where the existing value may be NULL."""
    return f"{_greatest()}(COALESCE({table}.{column}, EXCLUDED.{column}), EXCLUDED.{column})"


# How each kind of interaction changes the subscriber row when the openid already exists.
_TOUCH = "touch"  # a message or event the subscriber originated: last_interaction_at moves forward
# The same, when the interaction has follow-ups: a subscriber we hold is only looked up (its last_interaction_at
# moves in the follow-ups' first step, accounts.events.touch, by batches); for an openid we do not hold the
# statement stores nothing, and _TOUCH's creates the subscriber (the interaction's foreign key needs the row).
_LINK = "link"
_FOLLOW = "follow"
_UNFOLLOW = "unfollow"


@lru_cache(maxsize=16)
def _subscriber_conflict_clause(effect: str, vendor: str) -> str:
    t = connection.ops.quote_name(Subscriber._meta.db_table)
    true, false = ("TRUE", "FALSE") if vendor == "postgresql" else ("1", "0")
    touch = f"last_interaction_at = {_later('last_interaction_at', t)}, updated_at = EXCLUDED.updated_at"
    if effect == _TOUCH:
        sets = touch
    elif effect == _FOLLOW:
        # Applies unless a later unsubscribe is already recorded (a late retry of an old subscribe).
        applies = f"({t}.unsubscribed_at IS NULL OR {t}.unsubscribed_at <= EXCLUDED.subscribed_at)"
        sets = (
            f"is_following = CASE WHEN {applies} THEN {true} ELSE {t}.is_following END, "
            f"subscribed_at = CASE WHEN {applies} THEN {_later('subscribed_at', t)} ELSE {t}.subscribed_at END, "
            f"source_scene = CASE WHEN {t}.subscribed_at IS NULL THEN EXCLUDED.source_scene "
            f"ELSE {t}.source_scene END, "
            f"{touch}"
        )
    elif effect == _UNFOLLOW:
        applies = f"({t}.subscribed_at IS NULL OR {t}.subscribed_at <= EXCLUDED.unsubscribed_at)"
        sets = (
            f"is_following = CASE WHEN {applies} THEN {false} ELSE {t}.is_following END, "
            f"unsubscribed_at = CASE WHEN {applies} THEN {_later('unsubscribed_at', t)} "
            f"ELSE {t}.unsubscribed_at END, "
            "updated_at = EXCLUDED.updated_at"
        )
    else:  # pragma: no cover - programming error
        raise ValueError(effect)
    return f" ON CONFLICT (openid) DO UPDATE SET {sets} RETURNING id"


def _subscriber_values(*, openid: str, effect: str, at: datetime, scene: str) -> dict[str, Any]:
    values: dict[str, Any] = {"openid": openid}
    if effect == _TOUCH:
        values.update(is_following=True, last_interaction_at=at)
    elif effect == _FOLLOW:
        values.update(is_following=True, subscribed_at=at, source_scene=scene, last_interaction_at=at)
    elif effect == _UNFOLLOW:
        values.update(is_following=False, unsubscribed_at=at)
    return values


def _interaction_values(
    *, message: InboundMessage, subscriber_id: int | None, reply: str, has_follow_ups: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "subscriber_id": subscriber_id,
        "kind": message.kind,
        "dedupe_key": message.dedupe_key,
        "msg_id": message.msg_id,
        "event_key": message.event_key,
        "scene": message.scene,
        "data": message.fields,
        "raw_xml": message.raw_xml,
        "reply": reply,
        "created_at": message.created_at,
        "received_at": message.received_at,
        # The outbox: only interactions with follow-up work wait for accounts.tasks.interaction_process.
        "processed_at": None if has_follow_ups else message.received_at,
    }
    attributes = message.attributes
    for name in INTERACTION_ATTRIBUTES:
        if name in attributes:
            values[name] = attributes[name]
    # Free text longer than its column is stored cut (the whole message stays in data and raw_xml): an INSERT
    # that fails would answer 503 and WeChat would retry the same message for ever.
    for name, limit in _char_limits().items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            values[name] = value[:limit]
    return values


_CHAR_LIMITS: dict[str, int] = {}


def _char_limits() -> dict[str, int]:
    if not _CHAR_LIMITS:
        _CHAR_LIMITS.update(
            {f.attname: f.max_length for f in Interaction._meta.concrete_fields
             if isinstance(f, models.CharField) and f.max_length and f.name != "dedupe_key"}
        )  # fmt: skip
    return _CHAR_LIMITS


def _follow_kind(effect: str | None) -> str | None:
    return {_FOLLOW: FollowEvent.Kind.FOLLOW, _UNFOLLOW: FollowEvent.Kind.UNFOLLOW}.get(effect)  # type: ignore[arg-type]


# The columns whose values come from the message (parameters); every other column gets its constant default inlined
# in the statement. Fewer than 50 parameters keep psycopg's query conversion cached.
_SUBSCRIBER_PARAMS = {
    _TOUCH: ("openid", "is_following", "last_interaction_at"),
    _LINK: ("openid",),
    _FOLLOW: ("openid", "is_following", "subscribed_at", "source_scene", "last_interaction_at"),
    _UNFOLLOW: ("openid", "is_following", "unsubscribed_at"),
}
# The typed attributes a message carries are parameters too; the others (most of them: a text message has only its
# content) get their constant defaults inlined, so that each request adapts only the values it has. One statement
# per effect and set of attributes present (a few per kind of message), each prepared once per connection.
_INTERACTION_PARAMS = (
    "subscriber_id",
    "kind",
    "dedupe_key",
    "msg_id",
    "event_key",
    "scene",
    "data",
    "raw_xml",
    "reply",
    "created_at",
    "received_at",
    "processed_at",
)


_LENGTH = re.compile(r"[(]\d+[)]$")  # varchar(64) -> varchar


def _pg_insert_sql(
    model: type[models.Model], prefix: str, param_names: Iterable[str], expressions: dict, *, select_from: str = ""
) -> str:
    """`INSERT INTO table (columns) VALUES (...)`; with `select_from` (e.g. "FROM e"), `INSERT INTO table (columns)
    SELECT ... <select_from>` (each value cast to its column's type: a SELECT's untyped literals and parameters
    would be text)."""
    qn = connection.ops.quote_name
    param_names = set(param_names)
    columns, placeholders = [], []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.generated:  # PostgreSQL computes generated columns (Subscriber.*_delay_us)
            continue
        columns.append(qn(f.column))
        if f.attname in expressions:
            placeholders.append(expressions[f.attname])
        elif f.attname in param_names:
            placeholders.append(f"%({prefix}{f.attname})s")
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            placeholders.append("%(now)s")
        else:
            default = f.get_db_prep_save(_default(f), connection)
            literal = psycopg.sql.Literal(default).as_string(connection.connection)
            placeholders.append(literal.replace("%", "%%"))
        if select_from and f.attname not in expressions:  # without its length: too long fails as in VALUES
            placeholders[-1] = f"CAST({placeholders[-1]} AS {_LENGTH.sub('', f.cast_db_type(connection))})"
    table = qn(model._meta.db_table)
    if select_from:
        return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(placeholders)} {select_from}"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(placeholders)})"  # noqa: S608


@lru_cache(maxsize=128)
def _pg_record_sql(effect: str | None, attributes: tuple[str, ...]) -> str:
    """The statement of _insert_all_postgresql for one effect and the typed attributes given (constant text:
    prepared once per connection)."""
    ctes = []
    expressions = {}
    if effect == _LINK:
        # The subscriber we hold: an index probe, nothing written to its table (the statement does not even open
        # the table's indexes for writing). Without one, nothing is inserted and the statement answers no
        # subscriber: the caller runs _TOUCH's statement instead, which creates it.
        subscribers = connection.ops.quote_name(Subscriber._meta.db_table)
        interaction_sql = _pg_insert_sql(
            Interaction, "i_", (*_INTERACTION_PARAMS, *attributes), {"subscriber_id": "e.id"}, select_from="FROM e"
        )
        return (
            f"WITH e AS (SELECT id FROM {subscribers} WHERE openid = %(s_openid)s), "  # noqa: S608
            f"i AS ({interaction_sql} ON CONFLICT (dedupe_key) DO NOTHING RETURNING id) "
            "SELECT (SELECT id FROM i), (SELECT id FROM e)"
        )
    if effect is not None:
        subscriber_sql = _pg_insert_sql(Subscriber, "s_", _SUBSCRIBER_PARAMS[effect], {})
        ctes.append(f"s AS ({subscriber_sql}{_subscriber_conflict_clause(effect, connection.vendor)})")
        expressions["subscriber_id"] = "(SELECT id FROM s)"
    interaction_sql = _pg_insert_sql(Interaction, "i_", (*_INTERACTION_PARAMS, *attributes), expressions)
    ctes.append(f"i AS ({interaction_sql} ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, subscriber_id)")
    if _follow_kind(effect) is not None:
        follow_table = connection.ops.quote_name(FollowEvent._meta.db_table)
        columns = "subscriber_id, kind, at, scene, interaction_id"
        values = "subscriber_id, %(f_kind)s, %(f_at)s, %(f_scene)s, id"
        ctes.append(f"f AS (INSERT INTO {follow_table} ({columns}) SELECT {values} FROM i)")  # noqa: S608
    return "WITH " + ", ".join(ctes) + " SELECT id FROM i"  # noqa: S608 - identifiers from the models


def _pg_execute(statement: Callable[[], str], params: dict[str, Any]) -> tuple | None:
    """Run one statement server-side prepared (parsed and planned once per connection), logged like Django's own
    queries.

    Django's cursor would check the connection's health with an extra round trip per request and bind the
    parameters client-side (the statement is re-planned every time); the callback does neither. psycopg prepares
    only when the connection's prepare_threshold is set (settings: DATABASE_PREPARED_STATEMENTS, on by default);
    otherwise the same statement is parsed on every call. A connection that broke since the last request is
    reopened once here.
    """
    for attempt in (1, 2):
        try:
            with connection.wrap_database_errors:
                connection.ensure_connection()
                sql = statement()  # built once per process, with the connection (it renders constant defaults)
                started = time.monotonic()
                with psycopg.Cursor(connection.connection) as cursor:
                    cursor.execute(sql, params, prepare=True)
                    row = cursor.fetchone()
            break
        except OperationalError:
            if attempt == 2 or connection.in_atomic_block:
                raise
            connection.close()
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return row
