"""The click buffer of tracked links: the redirect appends a click to a Redis list, a Celery task stores the list in
the database by batches.

    /r/<token>  ->  one Redis call (a script): the dedupe marker of the click window (SET NX EX, the cache key that
                    content.services and accounts.privacy use) and, for a first click, RPUSH onto `links:clicks`;
                    at most once a second (a shared flag), it also asks for a drain (a Celery task, 1.5 s later)
    drain       ->  moves a batch from `links:clicks` to `links:clicks:draining` (atomically, while holding the drain
                    lock), stores it in one INSERT ... SELECT ... ON CONFLICT (dedupe_key) DO NOTHING (the time-slot
                    dedupe key is the idempotency key) that also moves the clickers' last_interaction_at, hands the
                    new rows' follow-ups to `accounts.tasks.interactions_process` after commit, then empties
                    `draining`. The beat runs it every minute as well.

Exactly once: a click is answered after Redis has it (so a web process that dies after answering loses nothing);
a drain that dies before emptying `draining` leaves it to the next drain, whose INSERT finds the rows already there
and stores nothing twice; rows whose follow-ups were not handed over are processed by the accounts sweeper. Nothing
is kept in memory. Redis's own durability applies to the list (appendonly in production: see the README).

When Redis does not answer, `click_buffer` says so and the caller stores the click directly (the statements of
before: one UPDATE, one INSERT). Without Redis (the embedded mode) or on another database than PostgreSQL there is
no buffer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

import redis
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction

from wechat_crm.cache import RedisCache

from . import links

logger = logging.getLogger(__name__)

BUFFER_KEY = "links:clicks"
DRAINING_KEY = "links:clicks:draining"
LOCK_KEY = "links:clicks:drain-lock"
KICK_KEY = "links:clicks:kick"
KICK_MS = 1000  # at most one drain asked for per second, by all web processes together
KICK_COUNTDOWN = 1.5  # seconds: after the flag expired, so that the drain finds every click that saw the flag
LOCK_MS = 120_000  # renewed at each batch
DRAIN_BATCH = 1000

# KEYS: the dedupe marker, the buffer, the kick flag. ARGV: the window (s), the entry, the kick flag's life (ms).
# 0: a repeat within the window (nothing appended); 1: appended; 2: appended, and the caller asks for a drain.
_APPEND = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then return 2 end
return 1
"""
# KEYS: lock, draining, buffer. ARGV: lock token, batch, lock life (ms). What a previous drain left in `draining`
# first; otherwise the next batch, moved from the buffer. An error when the lock is no longer ours.
_MOVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('drain lock lost') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local items = redis.call('LRANGE', KEYS[2], 0, -1)
if #items > 0 then return items end
items = redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[2]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[3], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""
# KEYS: lock, key to delete. ARGV: lock token. Deletes only while the lock is ours.
_IF_LOCKED_DELETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[2])
"""

_APPEND_SHA = hashlib.sha1(_APPEND.encode()).hexdigest()  # noqa: S324 (Redis names scripts by their SHA-1)
APPEND_TIMEOUT = 1.0  # seconds to connect to Redis and to get its answer, when the cache sets none

_scripts: dict[tuple[int, str], object] = {}
_local = threading.local()


class _Buffer(NamedTuple):
    pid: int
    caches_setting: dict  # settings.CACHES when it was built (tests replace it)
    client: redis.Redis | None
    make_key: Callable[[str], str]  # the default cache's keys (its prefix and version), for the window's markers


_buffer: _Buffer | None = None
_buffer_lock = threading.Lock()


def _current() -> _Buffer:
    """The buffer's client and key function, built once per process and CACHES setting (a click pays two lookups)."""
    global _buffer
    buffer = _buffer
    if buffer is not None and buffer.caches_setting is settings.CACHES and buffer.pid == os.getpid():
        return buffer
    with _buffer_lock:
        cache = caches["default"]
        client = None
        if isinstance(cache, RedisCache) and connection.vendor == "postgresql":
            client = cache.redis_client()  # the cache's own kept client: one pool for the markers and the buffer
        _buffer = buffer = _Buffer(os.getpid(), settings.CACHES, client, cache.make_key)
    return buffer


def _client() -> redis.Redis | None:
    """The default cache's own kept redis-py client (wechat_crm.cache), so that the buffer and the click window's
    markers, which the cache API reads too, live side by side on one pool; None without a Redis cache or
    PostgreSQL."""
    return _current().client


def _script(client, source: str):
    key = (id(client), source)
    script = _scripts.get(key)
    if script is None:
        script = _scripts.setdefault(key, client.register_script(source))
    return script


def _append_connection(client):
    """The click's own Redis connection, one per process and thread, outside the pool: checking a connection out of
    the pool and back costs more than the command (about 30 us of CPU and 90 us of waiting of our 2-core machine's,
    measured per click)."""
    pool = client.connection_pool
    conn = getattr(_local, "conn", None)
    if conn is None or _local.pid != os.getpid() or _local.pool is not pool:
        kwargs = dict(pool.connection_kwargs)
        kwargs["socket_timeout"] = kwargs.get("socket_timeout") or APPEND_TIMEOUT
        kwargs["socket_connect_timeout"] = kwargs.get("socket_connect_timeout") or APPEND_TIMEOUT
        conn = pool.connection_class(**kwargs)
        _local.conn, _local.pid, _local.pool = conn, os.getpid(), pool
    return conn


def _packed(*parts: str | int) -> bytes:
    """A command in Redis's protocol (RESP), as redis-py's packer writes it for str and int arguments, without its
    per-argument encoder (most of the CPU the command costs the click)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else b"%d" % part
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _append(client, keys: list[str], args: list) -> int:
    """The append script, by its SHA-1 (loaded on first use); one round trip. A connection that worked before and is
    found broken (Redis restarted since) is opened again once; a connection that cannot be opened is not retried."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    conn = _append_connection(client)
    for attempt in (1, 2):
        reused = conn.is_connected
        try:
            try:
                conn.send_packed_command([_packed("EVALSHA", _APPEND_SHA, len(keys), *keys, *args)])
                return conn.read_response()
            except NoScriptError:
                conn.send_packed_command([_packed("EVAL", _APPEND, len(keys), *keys, *args)])
                return conn.read_response()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            conn.disconnect()
            if attempt == 2 or not reused:
                raise
    raise AssertionError("unreachable")


def click_buffer(*, payload: links.LinkPayload, at: datetime, window: int, dedupe_key: str, marker: str) -> bool:
    """Append a first click of its window to the buffer (a repeat is dropped, as the cache marker says). False when
    there is no buffer or Redis did not answer: the caller stores the click itself."""
    buffer = _current()
    client = buffer.client
    if client is None:
        return False
    entry = json.dumps(
        [payload.subscriber_id, payload.push_id, payload.content_id, payload.link_id, at.isoformat(), dedupe_key],
        separators=(",", ":"),
    )
    try:
        marker_key = buffer.make_key(marker)
        outcome = _append(client, [marker_key, BUFFER_KEY, KICK_KEY], [window, entry, KICK_MS])
    except Exception:
        logger.warning("the click buffer is unavailable; storing the click directly", exc_info=True)
        return False
    if outcome == 2:
        threading.Thread(target=_drain_ask, name="link-clicks-kick", daemon=True).start()
    return True


def _drain_ask() -> None:
    """Enqueue a drain (from a thread: the click's request does not wait for the broker). If the broker is down, the
    beat's drain stores the clicks within a minute."""
    from .tasks import link_clicks_drain

    try:
        with link_clicks_drain.app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=0, timeout=2.0)
            link_clicks_drain.apply_async(countdown=KICK_COUNTDOWN, retry=False, producer=producer, expires=300)
    except Exception:
        logger.warning("could not ask for a drain of the click buffer; the beat will drain it", exc_info=True)


def clicks_drain(*, batch: int = DRAIN_BATCH, max_batches: int = 100) -> int:
    """Store what the buffer holds, by batches of `batch`, exactly once. Returns how many clicks it stored (repeats
    of the time slot and clicks of erased subscribers are not). 0 at once when another drain holds the lock."""
    client = _client()
    if client is None:
        return 0
    token = secrets.token_hex(8)
    if not client.set(LOCK_KEY, token, nx=True, px=LOCK_MS):
        return 0
    stored = 0
    try:
        for _ in range(max_batches):
            entries = _script(client, _MOVE)(keys=[LOCK_KEY, DRAINING_KEY, BUFFER_KEY], args=[token, batch, LOCK_MS])
            if not entries:
                break
            stored += len(clicks_store(entries=entries))
            _script(client, _IF_LOCKED_DELETE)(keys=[LOCK_KEY, DRAINING_KEY], args=[token])
    finally:
        _script(client, _IF_LOCKED_DELETE)(keys=[LOCK_KEY, LOCK_KEY], args=[token])
    return stored


def buffered() -> bool:
    """Whether clicks go through the buffer (a Redis cache and PostgreSQL)."""
    return _client() is not None


def pending() -> int:
    """Clicks in the buffer not stored yet (the buffer and a drain's batch in progress)."""
    client = _client()
    if client is None:
        return 0
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(BUFFER_KEY)
        pipe.llen(DRAINING_KEY)
        return sum(pipe.execute())


def buffer_clear(*, markers: bool = False) -> None:
    """Forget every buffered click, and with `markers` the click windows' markers (for tests: a test's clicks must
    not reach the next test's database)."""
    client = _client()
    if client is None:
        return
    client.delete(BUFFER_KEY, DRAINING_KEY, LOCK_KEY, KICK_KEY)
    if markers:
        for key in client.scan_iter(match=caches["default"].make_key("link_click:*"), count=1000):
            client.delete(key)


def _parse(entries: Sequence[bytes | str]) -> list[tuple]:
    rows = []
    for raw in entries:
        try:
            subscriber_id, push_id, content_id, link_id, at, dedupe_key = json.loads(raw)
        except (ValueError, TypeError):
            logger.error("a malformed entry in the click buffer was dropped: %r", raw)
            continue
        url = links.url_for(link_id)
        if url is None:
            logger.info("a buffered click of a tracked link that no longer exists was dropped")
            continue
        data = {"push_id": push_id, "content_id": content_id, "link_id": link_id, "engaged": True}
        rows.append((subscriber_id, dedupe_key, url[:2048], json.dumps(data), at))
    return rows


def clicks_store(*, entries: Sequence[bytes | str]) -> list[int]:
    """Store a batch of buffered clicks in one statement: the link_click interactions (ON CONFLICT (dedupe_key) DO
    NOTHING: a batch stored again stores nothing), for subscribers that still exist, and their last_interaction_at
    (never backwards). Hands the new rows' follow-ups (stage, score, journeys, attribution, the push's click
    counters) to Celery after commit, through the interaction outbox's publish (if the broker is down the accounts
    sweeper runs them). Returns the new interactions' ids."""
    from accounts import outbox
    from accounts.models import Interaction, Subscriber

    rows = _parse(entries)
    if not rows:
        return []
    given = {"subscriber_id", "kind", "dedupe_key", "url", "data", "created_at", "received_at", "processed_at",
             "raw_xml", "reply"}  # fmt: skip
    constants = [
        (f.column, f.get_default())
        for f in Interaction._meta.concrete_fields
        if not f.primary_key and f.column not in given
    ]
    columns = ", ".join(["subscriber_id", "kind", "dedupe_key", "url", "data", "created_at", "received_at",
                         "processed_at", "raw_xml", "reply", *(c for c, _ in constants)])  # fmt: skip
    placeholders = ", ".join(["%s"] * len(constants))
    interactions, subscribers = Interaction._meta.db_table, Subscriber._meta.db_table
    sql = f"""
        WITH v AS (
            SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::jsonb[], %s::timestamptz[])
                AS v(subscriber_id, dedupe_key, url, data, at)
        ), ins AS (
            INSERT INTO {interactions} ({columns})
            SELECT v.subscriber_id, %s, v.dedupe_key, v.url, v.data, v.at, v.at, NULL, '', ''{", " if constants else ""}
                   {placeholders}
            FROM v JOIN {subscribers} s ON s.id = v.subscriber_id
            ORDER BY v.at
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING id, subscriber_id, created_at
        ), touched AS (
            UPDATE {subscribers} s
            SET last_interaction_at = GREATEST(COALESCE(s.last_interaction_at, m.at), m.at)
            FROM (SELECT subscriber_id, max(created_at) AS at FROM ins GROUP BY subscriber_id) m
            WHERE s.id = m.subscriber_id
        )
        SELECT id FROM ins ORDER BY created_at, id
    """  # noqa: S608 (table and column names from the models; values are parameters)
    columns_of_rows = list(zip(*rows, strict=True))
    params = [list(c) for c in columns_of_rows]
    params += [Interaction.Kind.LINK_CLICK, *(value for _, value in constants)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [row[0] for row in cursor.fetchall()]
        if ids:
            transaction.on_commit(lambda: outbox.publish(ids))
    if len(ids) < len(rows):
        logger.info("click buffer: %d of %d clicks stored (the others already were, or their subscriber is gone)",
                    len(ids), len(rows))  # fmt: skip
    return ids
