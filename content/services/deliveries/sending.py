"""Sending one page of a push's deliveries (one page task = one call of `deliveries_send_page`)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ...models import Delivery, MassBatch, Push, SendPolicy
from . import tallies
from .outcomes import mark_not_following, results_classify, retries_requeue, updates_write
from .progress import push_finish_if_done
from .quotas import decisions_for, quiet_hours_end, quotas_apply
from .rendering import Renderer
from .reports import Written, deliveries_early_reports_apply
from .rows import ChunkResult, Claim, D, DeliveryUpdate, Retry, Sendable, skipped
from .start_marks import StartMarks

logger = logging.getLogger(__name__)

# Channels whose every message WeChat reports on by its msgid (TEMPLATESENDJOBFINISH, subscribe_msg_sent_event).
REPORTED_CHANNELS = (Push.Channel.TEMPLATE, Push.Channel.NOTICE)


class ChunkSent(NamedTuple):
    """A chunk's rows by outcome status, and when its retries run (seconds; None without retries)."""

    counts: Counter[str]
    retry_in: float | None
    defer_until: dt.datetime | None = None  # the send policy said LATER (quiet hours) for some rows


@dataclass
class PageOutcome:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    retry_in: float | None = None  # seconds: re-queue the page
    defer_until: dt.datetime | None = None  # quiet hours: run the page again then
    counts: dict[str, int] = field(default_factory=dict)


def _claim(push_id: int, lo: int, hi: int | None, now: dt.datetime, limit: int | None = None) -> list[Claim]:
    """queued -> sending for the range's due rows (at most `limit`, lowest ids first), atomically: two copies of a
    page task never claim the same row."""
    table = Delivery._meta.db_table
    upper = "AND id < %s " if hi is not None else ""
    where = f"push_id = %s AND id >= %s {upper}AND status = %s AND (not_before IS NULL OR not_before <= %s)"
    params: list[Any] = [D.SENDING, now, push_id, lo, *([hi] if hi is not None else []), D.QUEUED, now]
    # A new claim forgets an unfollow stamped after an earlier one (tallies.py: the first unfollow since the claim).
    claim = "status = %s, claimed_at = %s, attempts = attempts + 1, unfollowed_at = NULL"
    if limit is None:
        sql = f"UPDATE {table} SET {claim} WHERE {where} "  # noqa: S608
    elif connection.vendor == "postgresql":
        # id = ANY(ARRAY(...)): the claimed ids are fetched first, then their rows by primary key. As "id IN (...)" the
        # planner may join the whole table to them (a sequential scan of every delivery for each chunk).
        sql = (
            f"UPDATE {table} SET {claim} WHERE id = ANY(ARRAY("  # noqa: S608
            f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)) AND status = %s "
        )
        params += [limit, D.QUEUED]
    else:
        sql = (
            f"UPDATE {table} SET {claim} "  # noqa: S608
            f"WHERE id IN (SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT %s) AND status = %s "
        )
        params += [limit, D.QUEUED]
    with connection.cursor() as cursor:
        cursor.execute(sql + "RETURNING id, subscriber_id, attempts", params)
        return [Claim._make(row) for row in sorted(cursor.fetchall())]


def _range(qs, lo: int, hi: int | None):
    qs = qs.filter(id__gte=lo)
    return qs.filter(id__lt=hi) if hi is not None else qs


def deliveries_send_page(*, push_id: int, lo: int, hi: int | None, threads: int | None = None) -> PageOutcome:
    """Send the page [lo, hi) of a push's deliveries:

    1. the push's state is checked (cancelled: the page's queued rows are skipped; quiet hours: deferred);
    2. the page's queued rows are CLAIMED with one UPDATE ... RETURNING (queued -> sending): two copies of the task
       cannot both send a row; a row left in "sending" by a dead worker becomes unknown, never resent;
    3. the send policy (conversations.policy) decides for the chunk's recipients in a few queries (their fields
       for rendering loaded by the same SELECT); skips are written with their reasons, quotas counted from our rows;
    4. the rest is sent through the client (a page of template or customer-service messages over its kept-alive
       pool, or one mass send); while a chunk's messages are in flight, the next chunk is claimed, decided and
       rendered, and its messages leave as soon as the chunk's are answered, so that the pool is kept busy;
    5. the outcomes are written with one statement (outcomes.py) per chunk of PUSH_WRITE_EVERY messages, while the
       next chunk's messages are in flight, so that a worker killed mid-page leaves few rows whose outcome is
       unknown (StartMarks); WeChat's reports on messages whose msgids were just written, stored before the write,
       are applied then (reports.py);
    6. rows WeChat asked to retry later go back to queued with not_before, and the task re-queues itself.
    """
    out = PageOutcome()
    push = (
        Push.objects.select_related("article", "template", "template__article", "mass_tag", "notice_template")
        .filter(pk=push_id)
        .first()
    )
    now = timezone.now()
    if push is None:  # deleted since the task was queued
        return out
    if push.status == Push.Status.CANCELLED:
        with transaction.atomic():
            tallies.tally_lock()
            n = _range(Delivery.objects.filter(push_id=push_id, status=D.QUEUED), lo, hi).update(
                status=D.SKIPPED, reason="cancelled", finished_at=now
            )
            tallies.tally_open_rows_closed(push_id=push_id, status=D.SKIPPED, reason="cancelled", n=n)
        return out
    if push.status != Push.Status.SENDING:
        return out
    policy = SendPolicy.current()
    quiet_end = None if push.ignore_quiet_hours else quiet_hours_end(policy, now)
    if quiet_end is not None:
        _range(Delivery.objects.filter(push_id=push_id, status=D.QUEUED), lo, hi).update(not_before=quiet_end)
        out.defer_until = quiet_end
        return out

    # Claimed a chunk at a time (PUSH_WRITE_EVERY rows; a mass send's whole page at once) and each chunk's outcomes
    # written once its messages are answered. The next chunk is claimed, decided and rendered while the current one's
    # messages are in flight (in the background), and its messages start before the current one's outcomes are
    # written, so the send pool never waits for the database. A worker killed mid-page leaves at most two chunks
    # "sending": one answered, its acceptances all marked (StartMarks: sent after the restart's recovery), and one
    # with its messages in flight or none started (those never started are queued again); the rest of the page stays
    # queued for the task's next delivery or the beat.
    every = None if push.is_mass else max(1, int(getattr(settings, "PUSH_WRITE_EVERY", 250)))
    renderer: Renderer | None = None
    in_flight: _InFlight | None = None
    try:
        while True:
            with transaction.atomic():  # the claim commits only once its start marks exist (see StartMarks)
                claimed = _claim(push_id, lo, hi, now, limit=every)
                marks = StartMarks.begin(push_id, [(c.delivery_id, c.attempts) for c in claimed]) if every else None
            chunk: _Chunk | None = None
            if claimed:
                out.claimed += len(claimed)
                renderer = renderer or Renderer(push)
                chunk = _chunk_prepare(push, policy, renderer, claimed, now, threads, marks)
            if in_flight is not None:
                done, in_flight = in_flight, None
                _chunk_answered(done)
                cancelled = (
                    chunk is not None and not Push.objects.filter(pk=push_id, status=Push.Status.SENDING).exists()
                )
                if chunk is not None and not cancelled:  # its messages leave while the answered chunk's are written
                    in_flight = _chunk_start(chunk, background=True)
                _outcome_add(out, _chunk_write(push, policy, done.chunk))
                if cancelled:
                    _chunk_release(chunk, timezone.now())  # cancelled meanwhile: no further chunk is sent
                    break
            elif chunk is not None and every is None:  # a mass page is one call
                _outcome_add(out, _chunk_finish(push, policy, _chunk_start(chunk, background=False)))
                break
            elif chunk is not None:
                in_flight = _chunk_start(chunk, background=True)
            if chunk is None:
                break
            now = timezone.now()
    finally:
        if in_flight is not None:  # an error preparing the next chunk: the one in flight is still written
            _outcome_add(out, _chunk_finish(push, policy, in_flight))
    if out.claimed:
        Push.objects.filter(pk=push_id).update(updated_at=timezone.now())
    out.sent = out.counts.get(D.SENT, 0)
    out.skipped = out.counts.get(D.SKIPPED, 0)
    if out.retry_in is None and out.defer_until is None:
        push_finish_if_done(push_id=push_id)
    return out


def _outcome_add(out: PageOutcome, chunk: ChunkSent) -> None:
    for status, n in chunk.counts.items():
        out.counts[status] = out.counts.get(status, 0) + n
    if chunk.retry_in is not None:
        out.retry_in = chunk.retry_in if out.retry_in is None else max(out.retry_in, chunk.retry_in)
    if chunk.defer_until is not None:
        out.defer_until = max(out.defer_until or chunk.defer_until, chunk.defer_until)


@dataclass
class _Chunk:
    """A claimed chunk, decided and rendered: the skips and quota refusals (in `result`), and the messages to send."""

    claimed: Sequence[Claim]
    now: dt.datetime
    marks: StartMarks | None
    sendable: list[Sendable]  # passed the send policy (notices' credits are counted from these)
    to_send: list[Sendable]  # ... and WeChat's quotas
    result: ChunkResult
    send: Any = None  # () -> ChunkResult: the chunk's messages, sent
    mass: bool = False


class _InFlight(NamedTuple):
    chunk: _Chunk
    future: Future | None  # the ChunkResult of its messages, being sent in the background (None: nothing to send)


def _chunk_prepare(
    push: Push,
    policy: SendPolicy,
    renderer: Renderer,
    claimed: Sequence[Claim],
    now: dt.datetime,
    threads: int | None,
    marks: StartMarks | None = None,
) -> _Chunk:
    """The send policy's decisions and WeChat's quotas for a claimed chunk, and its messages rendered."""
    decisions, subs = decisions_for(push, policy, [c.subscriber_id for c in claimed], now, renderer.subscriber_fields)
    result = ChunkResult()
    sendable: list[Sendable] = []
    for claim in claimed:
        decision = decisions[claim.subscriber_id]
        if decision.verdict == "never":
            result.updates.append(skipped(claim.delivery_id, decision.reason, now))
        elif decision.verdict == "later":  # quiet hours began since the page's check: back to queued until then
            result.updates.append(DeliveryUpdate(claim.delivery_id, D.QUEUED, decision.reason, not_before=decision.at))
        else:
            sendable.append(Sendable(claim.delivery_id, subs[claim.subscriber_id], claim.attempts))
    split = quotas_apply(push, policy, sendable, now, claimed=len(claimed))
    result.updates += split.over
    chunk = _Chunk(claimed, now, marks, sendable, split.sendable, result, mass=push.is_mass)
    if split.sendable and not push.is_mass:
        chunk.send = _messages_sender(push, policy, renderer, split.sendable, threads, marks)
    elif split.sendable:
        chunk.send = lambda: _send_mass(push, renderer, split.sendable, policy)
    return chunk


def _chunk_start(chunk: _Chunk, *, background: bool) -> _InFlight:
    """Send the chunk's messages: in this process's background sender thread, or here and now."""
    if chunk.send is None:
        return _InFlight(chunk, None)
    if not background:
        future: Future = Future()
        future.set_result(chunk.send())
        return _InFlight(chunk, future)
    return _InFlight(chunk, _background().submit(chunk.send))


def _chunk_finish(push: Push, policy: SendPolicy, in_flight: _InFlight) -> ChunkSent:
    """Wait for the chunk's messages and write every row's outcome (one statement), its retries, who left."""
    _chunk_answered(in_flight)
    return _chunk_write(push, policy, in_flight.chunk)


def _chunk_answered(in_flight: _InFlight) -> None:
    """Wait for the chunk's messages: their outcomes join the chunk's result, to be written."""
    if in_flight.future is not None:
        in_flight.chunk.result.extend(in_flight.future.result())


def _chunk_write(push: Push, policy: SendPolicy, chunk: _Chunk) -> ChunkSent:
    """Write every row's outcome of an answered chunk (one statement), its retries, who left."""
    result = chunk.result
    requeue = retries_requeue(result.retries, policy)
    updates = result.updates + requeue.updates
    updates_write(updates)
    if push.channel in REPORTED_CHANNELS:  # WeChat may have reported some before their msgids were just written
        subscribers = {c.delivery_id: c.subscriber_id for c in chunk.claimed}
        written = [Written(u.msgid, subscribers[u.delivery_id], chunk.now) for u in updates if u.msgid is not None]
        deliveries_early_reports_apply(written=written)
    if chunk.marks is not None:
        chunk.marks.forget()
    mark_not_following(result.gone, chunk.now)
    if push.channel == Push.Channel.NOTICE:
        _notice_consents_used(push, chunk.sendable, updates, result.refused)
    later = [u.not_before for u in result.updates if u.status == D.QUEUED and u.not_before is not None]
    return ChunkSent(Counter(update.status for update in updates), requeue.delay, max(later) if later else None)


def _chunk_release(chunk: _Chunk, now: dt.datetime) -> None:
    """A chunk claimed but not sent (its push was cancelled meanwhile, the only way out of sending while rows are
    open): its rows are skipped as the cancelled push's queued rows are; none of its messages started."""
    updates_write([skipped(c.delivery_id, "cancelled", now) for c in chunk.claimed])
    if chunk.marks is not None:
        chunk.marks.forget()


_sender: tuple[int, ThreadPoolExecutor] | None = None
_sender_lock = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """This process's thread that sends a chunk's messages while the page task prepares the next chunk (one: a page
    task has one chunk in flight; created after fork, never shared with a parent process)."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            _sender = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="push-chunk"))
        return _sender[1]


def _notice_consents_used(
    push: Push, sendable: Sequence[Sendable], updates: Sequence[DeliveryUpdate], refused: Sequence[int]
) -> None:
    """Each notice WeChat accepted uses one acceptance of a one-time template; a refusal (43101) leaves none."""
    from ..notices import notice_credits_use, notice_refused

    sent = {u.delivery_id for u in updates if u.status == D.SENT}
    notice_credits_use(
        subscriber_ids=[s.recipient["id"] for s in sendable if s.delivery_id in sent], template=push.notice_template
    )
    notice_refused(subscriber_ids=refused, template=push.notice_template)


def _messages_sender(
    push: Push,
    policy: SendPolicy,
    renderer: Renderer,
    sendable: Sequence[Sendable],
    threads: int | None,
    marks: StartMarks | None,
) -> Any:
    """Template or customer-service messages, one per recipient, rendered now; the returned function sends them over
    the client's kept-alive pool (no database access: it may run in another thread) and classifies the results."""
    from wechat_crm.wechat.client import get_client

    client = get_client()
    if push.channel == Push.Channel.TEMPLATE:
        build, send = renderer.template, client.send_template_many
    elif push.channel == Push.Channel.NOTICE:
        build, send = renderer.notice, client.send_notice_many
    else:
        build, send = renderer.custom, client.send_custom_many
    payloads = [build(s.recipient) for s in sendable]
    block = threads or settings.PUSH_SEND_THREADS
    hooks = marks.hooks([(s.delivery_id, s.attempts) for s in sendable], block=block) if marks else {}

    def run() -> ChunkResult:
        results = send(payloads, threads=threads, **hooks)
        if marks is not None:  # before the next chunk's messages leave (see deliveries_send_page)
            marks.answered()
        return results_classify(sendable, results, policy)

    return run


def _send_mass(push: Push, renderer: Renderer, sendable: Sequence[Sendable], policy: SendPolicy) -> ChunkResult:
    """One mass send for the page (up to 10,000 openids, or the tag), idempotent through its clientmsgid.

    A news push sends its articles' WeChat draft as mpnews (publishing.services.news): to everyone, its tag or the
    page's openids; a refusal of WeChat's rules before any call ends the page's deliveries in error with the rule."""
    from wechat_crm.exceptions import ApplicationError
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import Outcome, WeChatError, classify

    client = get_client()
    openids: list[str] | None = [s.recipient["openid"] for s in sendable]
    if push.channel == Push.Channel.NEWS:
        from publishing.services import news

        if not news.by_openid(push):
            openids = None
        target = f"d{sendable[0].delivery_id}" if openids is not None else ("tag" if push.mass_tag_id else "all")
        clientmsgid = f"push{push.pk}-{target}"
    elif push.channel == Push.Channel.MASS_TAG:
        clientmsgid = f"push{push.pk}-tag"
    else:
        clientmsgid = f"push{push.pk}-d{sendable[0].delivery_id}"
    batch, _created = MassBatch.objects.get_or_create(push=push, clientmsgid=clientmsgid)
    attempts = max(s.attempts for s in sendable)
    now = timezone.now()
    msg_id = batch.msg_id
    if batch.sent_at is not None:
        c = classify(None)
    else:
        try:
            if push.channel == Push.Channel.NEWS:
                sent = news.news_send(push=push, clientmsgid=clientmsgid, openids=openids)
            elif push.channel == Push.Channel.MASS_TAG:
                content = renderer.mass_content()
                sent = client.mass_send_to_tag(content, tag_id=push.mass_tag.wechat_tag_id, clientmsgid=clientmsgid)
            else:
                content = renderer.mass_content()
                sent = client.mass_send_to_openids(content, openids=openids, clientmsgid=clientmsgid)
            msg_id, c = sent.msg_id, classify(None)
        except WeChatError as exc:
            msg_id, c = None, classify(exc)
        except ApplicationError as exc:  # refused before any send: a WeChat rule, an article WeChat would refuse
            reason, errcode = str(exc.extra.get("rule") or "refused")[:64], exc.extra.get("errcode")
            return ChunkResult(
                updates=[DeliveryUpdate(s.delivery_id, D.ERROR, reason, errcode, finished_at=now) for s in sendable]
            )
    out = ChunkResult()
    if c.outcome in (Outcome.SENT, Outcome.SENT_ALREADY):
        MassBatch.objects.filter(pk=batch.pk).update(sent_at=batch.sent_at or now, msg_id=msg_id)
        out.updates += [DeliveryUpdate(s.delivery_id, D.SENT, msgid=msg_id, sent_at=now) for s in sendable]
    elif c.outcome == Outcome.RETRY_LATER and attempts < policy.max_attempts:
        out.retries += [Retry(s.delivery_id, c.retry_after or 1.0, c.reason, s.attempts) for s in sendable]
    else:
        status = D.UNKNOWN if c.outcome == Outcome.UNKNOWN else D.ERROR
        out.updates += [
            DeliveryUpdate(s.delivery_id, status, c.reason[:64], c.errcode, finished_at=now) for s in sendable
        ]
    return out
