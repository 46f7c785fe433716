"""What WeChat answered becomes each row's outcome, written a chunk at a time in one statement; messages WeChat asked
to send later wait with exponential backoff."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Subscriber

from ...models import Delivery, PushTally, SendPolicy
from . import tallies
from .rows import ChunkResult, D, DeliveryUpdate, Retry, Sendable


def retry_delay(*, retry_after: float | None, attempt: int, cap: float) -> float:
    """Exponential backoff with jitter, at least what WeChat suggested, at most `cap`."""
    base = max(1.0, retry_after or 1.0, 2.0 ** max(0, attempt - 1))
    high = min(cap, base)
    return max(0.5, random.uniform(high / 2, high))


def updates_write(updates: Sequence[DeliveryUpdate]) -> None:
    """Every row's outcome in ONE statement; only rows still "sending" (claimed by this task) are written. The same
    statement adds the rows' new outcomes to their push's counters (tallies.py; "sending" counts nothing)."""
    if not updates:
        return
    table = Delivery._meta.db_table
    if connection.vendor == "postgresql":
        sql = (
            f"WITH w AS (UPDATE {table} AS d SET status = v.status, reason = v.reason, errcode = v.errcode, "  # noqa: S608
            "msgid = COALESCE(v.msgid, d.msgid), sent_at = COALESCE(v.sent_at, d.sent_at), "
            "not_before = v.not_before, finished_at = v.finished_at "
            "FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::integer[], %s::bigint[], %s::timestamptz[], "
            "%s::timestamptz[], %s::timestamptz[]) AS v(id, status, reason, errcode, msgid, sent_at, not_before, "
            "finished_at) WHERE d.id = v.id AND d.id = ANY(%s::bigint[]) AND d.status = %s "
            "RETURNING d.push_id, d.status, d.reason, d.sent_at, d.unfollowed_at, d.clicked_at) "
            f"INSERT INTO {PushTally._meta.db_table} (push_id, key, n) SELECT w.push_id, k.key, count(*) "
            f"FROM w CROSS JOIN LATERAL {tallies.row_keys_sql('w')} AS k(key) WHERE k.key IS NOT NULL "
            "GROUP BY w.push_id, k.key"
        )
        # One array per column (10 parameters, not 8 per row): the driver's parsing of the statement stays cached.
        # The ids once more as "d.id = ANY(...)": the rows are then found by their primary key; joined to unnest() by
        # "d.id = v.id" alone, the planner may scan every delivery "sending" (the whole table) for each chunk.
        params = [list(column) for column in zip(*updates, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, params[0], D.SENDING])
        return
    with transaction.atomic():
        sending = set(
            Delivery.objects.select_for_update()
            .filter(pk__in=[u.delivery_id for u in updates], status=D.SENDING)
            .values_list("pk", flat=True)
        )
        objs = [
            Delivery(pk=u.delivery_id, status=u.status, reason=u.reason, errcode=u.errcode, msgid=u.msgid,
                     sent_at=u.sent_at, not_before=u.not_before, finished_at=u.finished_at)
            for u in updates if u.delivery_id in sending
        ]  # fmt: skip
        groups: dict[tuple[str, ...], list[Delivery]] = {}
        for obj in objs:  # COALESCE(v.msgid, d.msgid), COALESCE(v.sent_at, d.sent_at): a group per kept column set
            kept = tuple(name for name in ("msgid", "sent_at") if getattr(obj, name) is not None)
            groups.setdefault(kept, []).append(obj)
        for kept, group in groups.items():
            Delivery.objects.bulk_update(group, ["status", "reason", "errcode", "not_before", "finished_at", *kept])
        after = Delivery.objects.filter(pk__in=sending).values_list(*tallies.TALLY_FIELDS)
        tallies.tally_add(tallies.rows_deltas([], after))


def mark_not_following(subscriber_ids: Iterable[int], now: dt.datetime) -> None:
    """43004: WeChat says they left. accounts has no service for an unfollow without its event, so one UPDATE."""
    ids = list(subscriber_ids)
    if ids:
        Subscriber.objects.filter(pk__in=ids, is_following=True).update(is_following=False, unsubscribed_at=now)


def results_classify(sendable: Sequence[Sendable], results: Sequence[Any], policy: SendPolicy) -> ChunkResult:
    """Each result of a chunk (the client's SendResult) becomes its row's outcome, or a retry later."""
    from wechat_crm.wechat.errors import Outcome

    out = ChunkResult()
    sent_at = timezone.now()
    for (delivery_id, sub, attempts), result in zip(sendable, results, strict=True):
        c = result.classification
        if c.outcome in (Outcome.SENT, Outcome.SENT_ALREADY):
            out.updates.append(DeliveryUpdate(delivery_id, D.SENT, msgid=result.msgid, sent_at=sent_at))
        elif c.outcome == Outcome.NOT_FOLLOWING:
            out.updates.append(DeliveryUpdate(delivery_id, D.FAILED, "not_following", c.errcode, finished_at=sent_at))
            out.gone.append(sub["id"])
        elif c.outcome == Outcome.UNKNOWN:
            out.updates.append(DeliveryUpdate(delivery_id, D.UNKNOWN, c.reason[:64], c.errcode, finished_at=sent_at))
        elif c.outcome == Outcome.NOT_CONSENTED:
            out.updates.append(DeliveryUpdate(delivery_id, D.FAILED, "no_consent", c.errcode, finished_at=sent_at))
            out.refused.append(sub["id"])
        elif c.outcome == Outcome.OUTSIDE_WINDOW:
            update = DeliveryUpdate(delivery_id, D.SKIPPED, "outside_window", c.errcode, finished_at=sent_at)
            out.updates.append(update)
        elif c.outcome == Outcome.RETRY_LATER:
            if attempts >= policy.max_attempts:
                reason = f"retries_exhausted:{c.reason}"[:64]
                out.updates.append(DeliveryUpdate(delivery_id, D.ERROR, reason, c.errcode, finished_at=sent_at))
            else:
                out.retries.append(Retry(delivery_id, c.retry_after or 1.0, c.reason, attempts))
        else:
            out.updates.append(DeliveryUpdate(delivery_id, D.ERROR, c.reason[:64], c.errcode, finished_at=sent_at))
    return out


class Requeue(NamedTuple):
    """When a chunk's retries run again (seconds from now; None without retries), and their rows back to queued."""

    delay: float | None
    updates: list[DeliveryUpdate]


def retries_requeue(retries: Sequence[Retry], policy: SendPolicy) -> Requeue:
    """The delay before the chunk's retries (the longest any of them needs) and their rows back to queued then."""
    if not retries:
        return Requeue(None, [])
    delay = retry_delay(
        retry_after=max(r.retry_after for r in retries),
        attempt=max(r.attempts for r in retries),
        cap=float(policy.max_retry_delay_seconds),
    )
    when = timezone.now() + dt.timedelta(seconds=delay)
    return Requeue(delay, [DeliveryUpdate(r.delivery_id, D.QUEUED, r.reason[:64], not_before=when) for r in retries])
