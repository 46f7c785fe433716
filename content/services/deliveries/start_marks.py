"""Start marks: which messages of a claimed chunk were started and which WeChat accepted, kept in Redis as they go,
so that the rows a dead worker left "sending" can be told apart (see StartMarks)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .outcomes import updates_write
from .reports import deliveries_early_reports_apply
from .rows import D, DeliveryUpdate

logger = logging.getLogger(__name__)


class Recovered(NamedTuple):
    """Of the rows a dead worker left "sending": those whose message provably never started, and those WeChat
    accepted (delivery id -> msgid)."""

    unsent: set[int]
    accepted: dict[int, int | None]


class StartMarks:
    """Which messages of a claimed chunk were started, and which WeChat accepted, recorded in Redis as they go.

    A worker killed mid-chunk leaves its rows "sending". Those whose message never started are provably unsent and
    go back to the queue; those WeChat accepted (recorded with their msgid as each answer came) are sent; only the
    rest (the requests in flight when it died) become unknown. Without Redis (the embedded default), or when the
    chunk's marks could not be written, nothing is known and every stuck row becomes unknown, as before. A message
    whose start mark cannot be written is not sent (it is retried later), so an unmarked message never left. Marks
    name the claim as well as the row ("id:attempts"), so marks left by an earlier claim never speak for a later one.
    """

    PREFIX = "wechat_crm:push-chunk"
    TTL = 7 * 24 * 3600
    ACCEPTED_BATCH = 16

    def __init__(self, redis, push_id: int, claims: Sequence[tuple[int, int]]):
        self.redis = redis
        self.line = _line(redis)
        self.key = f"{self.PREFIX}:{push_id}:{_member(*claims[0])}"
        self._started_lock = threading.Lock()  # held while a block is marked: its messages wait for the mark
        self._started_upto = 0  # messages [0, upto) of the send order are marked started
        self._accepted_lock = threading.Lock()
        self._accepted: dict[str, str] = {}

    @classmethod
    def begin(cls, push_id: int, claims: Sequence[tuple[int, int]]) -> StartMarks | None:
        """Record a chunk's claims ((delivery id, attempts) each) inside the claim's transaction, before any of its
        messages is sent: a claim that committed always has its marks."""
        from wechat_crm.wechat import ratelimit

        redis = ratelimit.redis_client()
        if redis is None or not claims:
            return None
        marks = cls(redis, push_id, claims)
        key = marks.key
        try:
            marks.line.call(
                ("SADD", f"{key}:claimed", *(_member(*claim) for claim in claims)),
                ("SADD", f"{key}:started", "-"),  # these two exist from now on, so that their TTL is set once
                ("HSET", f"{key}:accepted", "-", ""),
                ("EXPIRE", f"{key}:claimed", cls.TTL),
                ("EXPIRE", f"{key}:started", cls.TTL),
                ("EXPIRE", f"{key}:accepted", cls.TTL),
            )
        except Exception:
            logger.warning("push %s: start marks unavailable; a crash would leave this chunk unknown", push_id)
            return None
        return marks

    def hooks(self, order: Sequence[tuple[int, int]], *, block: int) -> dict[str, Any]:
        """The client's before_send / after_send for the chunk's messages sent in `order` ((delivery id, attempts)
        each): starts are marked `block` messages at a time (one round trip per block; marking a message that then
        never leaves is safe: it becomes unknown). The acceptances known by then go with each block's start marks, in
        the same round trip; those that pile up meanwhile are written ACCEPTED_BATCH at a time."""
        members = [_member(*claim) for claim in order]

        def before_send(index: int) -> None:
            with self._started_lock:
                if index < self._started_upto:
                    return
                upto = min(len(members), max(index + 1, self._started_upto + max(1, block)))
                with self._accepted_lock:
                    batch, self._accepted = self._accepted, {}
                started = ("SADD", f"{self.key}:started", *members[self._started_upto : upto])
                try:
                    self.line.call(started, *([self._accepted_command(batch)] if batch else []))
                except Exception:
                    with self._accepted_lock:  # written with a later block, or by answered()
                        self._accepted = {**batch, **self._accepted}
                    raise
                self._started_upto = upto

        def after_send(index: int, result: Any) -> None:
            if result.ok:
                self._accepted_add(members[index], result.msgid)

        return {"before_send": before_send, "after_send": after_send}

    def _accepted_add(self, member: str, msgid: int | None) -> None:
        """WeChat took the message (its msgid, "" when it gave none), written a batch at a time: a crash before the
        chunk is written keeps those already flushed; the others are unknown, as they would be without marks."""
        with self._accepted_lock:
            self._accepted[member] = "" if msgid is None else str(msgid)
            if len(self._accepted) < self.ACCEPTED_BATCH:
                return
            batch, self._accepted = self._accepted, {}
        # Written outside the lock: no other thread waits for this batch.
        self._accepted_write(batch)

    def answered(self) -> None:
        """Every message of the chunk was answered: the acceptances still batched are written now, so that a crash
        before the chunk's outcomes are written (the next chunk's messages go out meanwhile) leaves none of them
        unknown. When Redis fails here, they are unknown after a crash, as without marks."""
        with self._accepted_lock:
            batch, self._accepted = self._accepted, {}
        if not batch:
            return
        try:
            self._accepted_write(batch)
        except Exception:
            logger.warning("%s: accepted marks not written; a crash would leave %s rows unknown", self.key, len(batch))

    def _accepted_command(self, batch: dict[str, str]) -> tuple[str, ...]:
        return ("HSET", f"{self.key}:accepted", *(item for pair in batch.items() for item in pair))  # TTL: begin()

    def _accepted_write(self, batch: dict[str, str]) -> None:
        self.line.call(self._accepted_command(batch))

    def forget(self) -> None:
        try:
            self.line.call(("DEL", f"{self.key}:claimed", f"{self.key}:started", f"{self.key}:accepted"))
        except Exception:
            logger.warning("could not delete %s (it expires)", self.key)

    @classmethod
    def recover(cls, push_id: int, stuck: Iterable[tuple[int, int]]) -> Recovered:
        """Of the rows stuck "sending" ((delivery id, attempts) each): the ids whose message provably never started,
        and those WeChat accepted (id -> msgid). Forgets the chunks it read."""
        from wechat_crm.wechat import ratelimit

        redis = ratelimit.redis_client()
        stuck_members = {_member(*claim): claim[0] for claim in stuck}
        unsent: set[int] = set()
        accepted: dict[int, int | None] = {}
        if redis is None or not stuck_members:
            return Recovered(unsent, accepted)
        try:
            for claimed_key in redis.scan_iter(match=f"{cls.PREFIX}:{push_id}:*:claimed", count=1000):
                base = _text(claimed_key).removesuffix(":claimed")
                ours = {_text(m) for m in redis.smembers(f"{base}:claimed")} & stuck_members.keys()
                if not ours:
                    continue  # another claim's chunk (maybe still being sent): not ours to judge or forget
                started = {_text(m) for m in redis.smembers(f"{base}:started")}
                if "-" in started:  # the chunk's marks were written before its first message
                    unsent |= {stuck_members[m] for m in ours - started}
                for member, msgid in redis.hgetall(f"{base}:accepted").items():
                    if _text(member) in ours:
                        accepted[stuck_members[_text(member)]] = int(msgid) if msgid else None
                redis.delete(f"{base}:claimed", f"{base}:started", f"{base}:accepted")
        except Exception:
            logger.warning("push %s: start marks unreadable; every stuck row becomes unknown", push_id, exc_info=True)
            return Recovered(set(), {})
        return Recovered(unsent, accepted)


class _Line:
    """One connection to Redis of the process's own (with the client's settings), for the start marks: a few commands
    sent together and their answers read, without the client's per-command work (taking a connection from its pool
    and checking it, the retry wrapper), which cost about twice the round trip itself. One command at a time from all
    threads (a lock); a failed call drops the connection (the next call connects again) and raises."""

    def __init__(self, redis) -> None:
        pool = redis.connection_pool
        self.connection = pool.connection_class(**pool.connection_kwargs)
        self.lock = threading.Lock()

    def call(self, *commands: tuple[Any, ...]) -> list[Any]:
        with self.lock:
            connection = self.connection
            try:
                connection.send_packed_command(connection.pack_commands(commands))
                return [connection.read_response() for _ in commands]
            except BaseException:
                connection.disconnect()  # answers of the other commands may be left unread
                raise


_lines: dict[int, tuple[Any, int, _Line]] = {}
_lines_lock = threading.Lock()


def _line(redis) -> _Line:
    """The process's line for a Redis client (a new one after fork: a connection is never shared between processes)."""
    entry = _lines.get(id(redis))
    if entry is None or entry[0] is not redis or entry[1] != os.getpid():
        with _lines_lock:
            entry = _lines.get(id(redis))
            if entry is None or entry[0] is not redis or entry[1] != os.getpid():
                entry = _lines[id(redis)] = (redis, os.getpid(), _Line(redis))
    return entry[2]


def _member(delivery_id: int, attempts: int) -> str:
    """A claim of a delivery row, as StartMarks names it."""
    return f"{delivery_id}:{attempts}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def deliveries_recover_accepted(accepted: dict[int, int | None], *, at: dt.datetime) -> None:
    """Rows still "sending" that WeChat accepted before their worker died: sent, with WeChat's msgid (one statement)."""
    updates_write([DeliveryUpdate(pk, D.SENT, msgid=msgid, sent_at=at) for pk, msgid in accepted.items()])
    # Their reports came while the rows were stuck (and found no msgid): applied now.
    deliveries_early_reports_apply(delivery_ids=[pk for pk, msgid in accepted.items() if msgid is not None])
