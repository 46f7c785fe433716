"""Sending outbound messages (operator replies, auto-reply templates, journey messages, confirmations, subscription
notices) a page at a time, as pushes send theirs (content.services.deliveries):

1. a chunk of due queued rows (at most OUTBOUND_WRITE_EVERY, lowest ids first) is CLAIMED with one UPDATE ...
   RETURNING (queued -> sending, SKIP LOCKED): two page tasks never send the same row; a row a dead worker left
   "sending" becomes unknown (`services.outbound_resend_stuck`), never resent;
2. the send policy (conversations.policy) decides for the chunk set-based: one `decide_many` per kind of send, the
   window and caps as they are now, each message not counted against itself. A subscriber's second message of the
   chunk is decided (and sent) in a later round, after the first, so that its window counts the first and the
   person's messages go out in order;
3. the rest is sent through the client's kept-alive pool with PUSH_SEND_THREADS in flight; WeChat's answer for one
   message never stops the others;
4. the outcomes are written with one statement per kind of outcome, only on rows still "sending".

One page task (`outbound_page_enqueue`, once per transaction that queued messages) sends every due message, a
chunk at a time, up to OUTBOUND_PAGE_LIMIT; then it hands over to a fresh task. Inside `sent_after_commit()` (the
callback's follow-ups, the release of welcomes held for the profile) the transaction's messages are sent by the same
process right after its commit instead: a welcome must reach WeChat inside the minute after the follow, and a page
task queued behind a backlog of follow-up tasks would wait for the whole backlog first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Subscriber
from wechat_crm.db import rows_update

from . import policy
from .models import OutboundMessage

logger = logging.getLogger(__name__)
S = OutboundMessage.Status
K = OutboundMessage.Kind


# --- enqueueing ------------------------------------------------------------------------------------------------------


def outbound_page_enqueue_now(*, eta: dt.datetime | None = None) -> None:
    from .tasks import outbound_send_page_task

    try:
        if eta is None:
            outbound_send_page_task.delay()
        else:
            outbound_send_page_task.apply_async(eta=eta)
    except Exception:  # the rows stay queued: outbound_resend_stuck (every minute) enqueues a page for them
        logger.warning("could not enqueue an outbound page", exc_info=True)


_send_after_commit: ContextVar[bool] = ContextVar("outbound_send_after_commit", default=False)


@contextmanager
def sent_after_commit() -> Iterator[None]:
    """Messages queued inside are sent by this process right after their transaction commits (`outbound_send_due`),
    not by a page task queued behind the tasks already waiting."""
    token = _send_after_commit.set(True)
    try:
        yield
    finally:
        _send_after_commit.reset(token)


def outbound_page_enqueue() -> None:
    """After commit, one page task sends what the transaction queued: one per transaction, however many messages;
    inside `sent_after_commit()`, this process sends them at once instead.

    A hook registered earlier in the transaction is only dropped by rolling back a savepoint that is still open,
    which drops this message too; so one hook is enough."""
    conn = transaction.get_connection()
    if conn.in_atomic_block and any(getattr(hook[1], "outbound_page", False) for hook in conn.run_on_commit):
        return
    send_now = _send_after_commit.get()

    def enqueue() -> None:
        if not send_now:
            outbound_page_enqueue_now()
            return
        try:
            outbound_send_due()
        except Exception:  # the rows stay queued (or sending, then unknown): a page task takes over
            logger.warning("sending the messages just queued failed; a page task sends them", exc_info=True)
            outbound_page_enqueue_now()

    enqueue.outbound_page = True  # type: ignore[attr-defined]
    transaction.on_commit(enqueue)


def outbound_send_due() -> PageResult:
    """Send the due queued messages, up to a page; a page task goes on past the page's limit, and one runs when the
    first message put back to queued (quiet hours, retry later) is due."""
    page = outbound_send_page()
    if page.full:
        outbound_page_enqueue_now()
    elif page.defer_until is not None:
        outbound_page_enqueue_now(eta=page.defer_until)
    return page


# --- a page ----------------------------------------------------------------------------------------------------------


@dataclass
class PageResult:
    """Each claimed message's status after the page, and when the earliest one put back to queued is due."""

    statuses: dict[int, str] = field(default_factory=dict)
    retry_after: dict[int, float] = field(default_factory=dict)  # message id -> seconds (WeChat's retry-later)
    defer_until: dt.datetime | None = None
    full: bool = False  # the page stopped at its limit: more may be due

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.statuses.values())


def _claim(*, now: dt.datetime, limit: int, ids: Collection[int] | None = None) -> list[int]:
    """queued -> sending for due rows (at most `limit`, lowest ids first), atomically."""
    table = OutboundMessage._meta.db_table
    where = "status = %s AND (not_before IS NULL OR not_before <= %s)"
    params: list[Any] = [S.SENDING, now, S.QUEUED, now]
    if ids is not None:
        if not ids:
            return []
        where += f" AND id IN ({', '.join(['%s'] * len(ids))})"
        params += list(ids)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = (
        f"UPDATE {table} SET status = %s, claimed_at = %s "  # noqa: S608
        f"WHERE id IN (SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT %s{lock}) AND status = %s "
        "RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit, S.QUEUED])
        return sorted(row[0] for row in cursor.fetchall())


def outbound_send_page(
    *, ids: Collection[int] | None = None, limit: int | None = None, client: Any = None, threads: int | None = None
) -> PageResult:
    """Send due queued messages a chunk at a time (all due ones, or those of `ids`), up to `limit` messages
    (OUTBOUND_PAGE_LIMIT). Safe to run concurrently and twice."""
    every = max(1, settings.OUTBOUND_WRITE_EVERY)
    limit = limit or settings.OUTBOUND_PAGE_LIMIT
    threads = threads or settings.PUSH_SEND_THREADS
    out = PageResult()
    send_policy = None
    while len(out.statuses) < limit:
        now = timezone.now()
        claimed = _claim(now=now, limit=min(every, limit - len(out.statuses)), ids=ids)
        if not claimed:
            return out
        if send_policy is None:
            from content.models import SendPolicy

            send_policy = SendPolicy.current()
        _send_chunk(claimed, now=now, out=out, send_policy=send_policy, client=client, threads=threads)
        if ids is not None and len(claimed) >= len(ids):
            return out
    out.full = True
    return out


def _send_chunk(
    claimed: Sequence[int], *, now: dt.datetime, out: PageResult, send_policy: Any, client: Any, threads: int
) -> None:
    rows = list(OutboundMessage.objects.select_related("template", "notice_template").filter(pk__in=claimed)
                .order_by("pk"))  # fmt: skip
    rounds: list[list[OutboundMessage]] = []
    seen: Counter[int] = Counter()
    for message in rows:  # the subscriber's n-th message of the chunk goes in round n
        n = seen[message.subscriber_id]
        seen[message.subscriber_id] += 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(message)
    for messages in rounds:
        _send_round(messages, now=now, out=out, send_policy=send_policy, client=client, threads=threads)


def _send_for(message: OutboundMessage) -> tuple[Any, ...]:
    """What the policy needs to know of the message (messages alike are decided together)."""
    return (message.kind, message.source, message.template_id, message.notice_template_id)


def _policy_send(message: OutboundMessage, messages: Sequence[OutboundMessage]) -> policy.Send:
    from .services import _policy_source

    pairs = tuple((m.subscriber_id, m.pk) for m in messages)
    if message.kind == K.NOTICE:
        return policy.Send(channel=policy.Channel.NOTICE, source=_policy_source(message.source),
                           notice_template=message.notice_template, messages=pairs)  # fmt: skip
    channel = policy.Channel.CUSTOM if message.kind == K.CUSTOM else policy.Channel.TEMPLATE
    template = message.template if message.template_id else None
    if channel == policy.Channel.TEMPLATE and template is None:  # a row from before templates were recorded
        from content.models import MessageTemplate

        template = MessageTemplate(purpose=MessageTemplate.Purpose.SERVICE)
    return policy.Send(channel=channel, source=_policy_source(message.source), template=template, messages=pairs)


def _send_round(
    messages: Sequence[OutboundMessage], *, now: dt.datetime, out: PageResult, send_policy: Any, client: Any,
    threads: int,
) -> None:  # fmt: skip
    """One message per subscriber: decide, send, write."""
    from wechat_crm.wechat.client import get_client

    groups: dict[tuple[Any, ...], list[OutboundMessage]] = {}
    for message in messages:
        groups.setdefault(_send_for(message), []).append(message)
    writes: list[tuple[int, dict[str, Any]]] = []
    sendable: list[OutboundMessage] = []
    for group in groups.values():
        decisions = policy.decide_many(send=_policy_send(group[0], group), now=now, policy=send_policy,
                                       subscriber_ids=[m.subscriber_id for m in group])  # fmt: skip
        for message in group:
            decision = decisions[message.subscriber_id]
            if decision.verdict == policy.Verdict.NEVER:  # never reaches WeChat
                writes.append((message.pk, {"status": S.SKIPPED, "skip_reason": decision.reason}))
            elif decision.verdict == policy.Verdict.LATER:  # quiet hours: sent when they end
                writes.append((message.pk, {"status": S.QUEUED, "skip_reason": decision.reason,
                                            "not_before": decision.at}))  # fmt: skip
                out.defer_until = min(out.defer_until or decision.at, decision.at)
            else:
                sendable.append(message)
    if sendable:
        client = client or get_client()
        by_kind: dict[str, list[OutboundMessage]] = {}
        for message in sendable:
            by_kind.setdefault(message.kind, []).append(message)
        for kind, batch in by_kind.items():
            send = {K.CUSTOM: client.send_custom_many, K.NOTICE: client.send_notice_many}.get(
                kind, client.send_template_many
            )
            results = send([m.payload for m in batch], threads=min(threads, len(batch)))
            writes += _outcomes(batch, results, now=now, out=out)
    _write(writes)
    for pk, fields in writes:
        out.statuses[pk] = fields["status"]
    for status in (S.SKIPPED, S.FAILED, S.UNKNOWN):
        for pk, fields in writes:
            if fields["status"] == status:
                logger.info("outbound message %s: %s %s", pk, status, fields.get("skip_reason") or fields.get("reason"))


def _outcomes(
    batch: Sequence[OutboundMessage], results: Sequence[Any], *, now: dt.datetime, out: PageResult
) -> list[tuple[int, dict[str, Any]]]:
    from wechat_crm.wechat.errors import Outcome

    writes: list[tuple[int, dict[str, Any]]] = []
    gone: list[int] = []
    notices: dict[Any, tuple[list[int], list[int]]] = {}  # template -> (accepted, refused) subscriber ids
    for message, result in zip(batch, results, strict=True):
        if message.kind == K.NOTICE and message.notice_template is not None:
            accepted, refused = notices.setdefault(message.notice_template, ([], []))
            if result.ok:
                accepted.append(message.subscriber_id)
            elif result.outcome == Outcome.NOT_CONSENTED:
                refused.append(message.subscriber_id)
        if result.ok or result.outcome == Outcome.SENT_ALREADY:
            fields = {"status": S.SENT, "msgid": result.msgid, "sent_at": now, "reason": "", "skip_reason": ""}
        elif result.outcome == Outcome.RETRY_LATER:
            wait = min(result.classification.retry_after or 30.0, 300.0)
            at = timezone.now() + dt.timedelta(seconds=wait)
            fields = {"status": S.QUEUED, "reason": str(result.classification.reason)[:255], "not_before": at}
            out.retry_after[message.pk] = wait
            out.defer_until = min(out.defer_until or at, at)
        elif result.outcome == Outcome.UNKNOWN:
            fields = {"status": S.UNKNOWN, "errcode": getattr(result.error, "errcode", None),
                      "reason": _("WeChat did not answer after the message went out; it may have been delivered, "
                                  "so it is not sent again")}  # fmt: skip
        else:
            fields = {"status": S.FAILED, "errcode": result.error.errcode,
                      "reason": _failure_reason(result.outcome, result.error)[:255]}  # fmt: skip
            if result.outcome == Outcome.NOT_FOLLOWING:
                gone.append(message.subscriber_id)
        writes.append((message.pk, fields))
    if gone:
        Subscriber.objects.filter(pk__in=gone).update(is_following=False)
    if notices:
        from content.services.notices import notice_credits_use, notice_refused

        for template, (accepted, refused) in notices.items():
            if accepted:
                notice_credits_use(subscriber_ids=accepted, template=template)
            if refused:
                notice_refused(subscriber_ids=refused, template=template)
    return writes


def _failure_reason(outcome: str, exc: Any) -> str:
    from wechat_crm.wechat.errors import Outcome

    if outcome == Outcome.OUTSIDE_WINDOW:
        return _("Outside WeChat's customer-service window (errcode %(code)s)") % {"code": exc.errcode}
    if outcome == Outcome.NOT_FOLLOWING:
        return _("The subscriber no longer follows the account")
    if outcome == Outcome.NOT_CONSENTED:
        return _("The person has not accepted this subscription notice (errcode %(code)s)") % {"code": exc.errcode}
    return _("WeChat refused the message: %(code)s %(message)s") % {"code": exc.errcode, "message": exc.errmsg}


def _write(writes: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """The outcomes, one statement per set of columns written; only rows still "sending" (claimed here)."""
    groups: dict[tuple[str, ...], list[OutboundMessage]] = {}
    for pk, fields in writes:
        groups.setdefault(tuple(sorted(fields)), []).append(OutboundMessage(pk=pk, **fields))
    for columns, rows in groups.items():
        rows_update(rows, columns, only_if={"status": S.SENDING})
