"""Sending a page of a push's deliveries, the caps and quotas checked before WeChat is called, and WeChat's reports.

One page task (content.tasks.push_send_page) = one call of `deliveries_send_page`:
  1. the push's state is checked (cancelled: the page's queued rows are skipped; quiet hours: deferred);
  2. the page's queued rows are CLAIMED with one UPDATE ... RETURNING (queued -> sending): two copies of the task
     cannot both send a row; a row left in "sending" by a dead worker becomes unknown, never resent;
  3. one SELECT loads the recipients with everything the caps need (following, paused, topic opt-out, sends in the
     frequency window, mass sends this month); skips are decided with their reasons, quotas counted from our rows;
  4. the rest is sent over the client's kept-alive pool (send_template_many / send_custom_many, or one mass call);
  5. the outcomes are written with one statement (UPDATE ... FROM VALUES on PostgreSQL) per PUSH_WRITE_EVERY
     messages sent, so that a worker killed mid-page leaves few rows whose outcome is unknown;
  6. rows WeChat asked to retry later go back to queued with not_before, and the task re-queues itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Subscriber

from .. import templating
from ..errors import PushInvalid
from ..models import Delivery, MassBatch, OperatorProfile, Push, SendPolicy

logger = logging.getLogger(__name__)

D = Delivery.Status
# Deliveries that count against caps and quotas (WeChat was, or may have been, asked to deliver them).
COUNTED = (D.SENDING, D.SENT, D.DELIVERED, D.FAILED, D.UNKNOWN)
OPEN = (D.QUEUED, D.SENDING)
WINDOW_48H = dt.timedelta(hours=48)
JOB_FINISH_ATTEMPTS = 8


@dataclass
class PageOutcome:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    retry_in: float | None = None  # seconds: re-queue the page
    defer_until: dt.datetime | None = None  # quiet hours: run the page again then
    counts: dict[str, int] = field(default_factory=dict)


# --- time rules -----------------------------------------------------------------------------------------------------


def quiet_hours_end(policy: SendPolicy, now: dt.datetime) -> dt.datetime | None:
    """When the current quiet hours end, or None outside quiet hours."""
    if not policy.quiet_hours_enabled or policy.quiet_start == policy.quiet_end:
        return None
    tz = ZoneInfo(policy.quiet_timezone)
    local = now.astimezone(tz)
    start, end, t = policy.quiet_start, policy.quiet_end, local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=tz)


def _day_start(now: dt.datetime) -> dt.datetime:
    """Midnight in Beijing: WeChat's quotas reset then."""
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(now: dt.datetime) -> dt.datetime:
    return _day_start(now).replace(day=1)


def retry_delay(*, retry_after: float | None, attempt: int, cap: float) -> float:
    """Exponential backoff with jitter, at least what WeChat suggested, at most `cap`."""
    base = max(1.0, retry_after or 1.0, 2.0 ** max(0, attempt - 1))
    high = min(cap, base)
    return max(0.5, random.uniform(high / 2, high))


# --- rendering ------------------------------------------------------------------------------------------------------


class Renderer:
    """Builds WeChat's JSON for one recipient. The shared context is built once per page."""

    def __init__(self, push: Push):
        from . import links_rewrite, template_context, template_render, template_url

        self.push = push
        self._render, self._url, self._rewrite = template_render, template_url, links_rewrite
        self.context = template_context(article=push.article, push=push)

    def template(self, sub: dict[str, Any]) -> dict[str, Any]:
        t = self.push.template
        message: dict[str, Any] = {
            "touser": sub["openid"],
            "template_id": t.wechat_template_id,
            "data": self._render(t, subscriber=sub, context=self.context),
        }
        url = self._url(t, subscriber_id=sub["id"], push_id=self.push.pk)
        if url:
            message["url"] = url
        if t.miniprogram_appid:
            message["miniprogram"] = {"appid": t.miniprogram_appid, "pagepath": t.miniprogram_pagepath}
        return message

    def custom(self, sub: dict[str, Any]) -> dict[str, Any]:
        push, article = self.push, self.push.article
        if article is not None:
            from . import link_track

            url = link_track(article.public_url(), subscriber_id=sub["id"], push_id=push.pk, content_id=article.pk)
            item = {"title": article.title, "description": article.digest, "url": url}
            if article.cover:
                item["picurl"] = article.cover_url()
            return {"touser": sub["openid"], "msgtype": "news", "news": {"articles": [item]}}
        text = self._rewrite(push.text, subscriber_id=sub["id"], push_id=push.pk)
        return {"touser": sub["openid"], "msgtype": "text", "text": {"content": text}}

    def mass_text(self) -> str:
        push, article = self.push, self.push.article
        if push.text.strip():
            return push.text
        return "\n".join(p for p in (article.title, article.digest, article.public_url()) if p)


# --- the page -------------------------------------------------------------------------------------------------------


def _claim(
    push_id: int, lo: int, hi: int | None, now: dt.datetime, limit: int | None = None
) -> list[tuple[int, int, int]]:
    """queued -> sending for the range's due rows (at most `limit`, lowest ids first), atomically: two copies of a
    page task never claim the same row."""
    table = Delivery._meta.db_table
    upper = "AND id < %s " if hi is not None else ""
    where = f"push_id = %s AND id >= %s {upper}AND status = %s AND (not_before IS NULL OR not_before <= %s)"
    params: list[Any] = [D.SENDING, now, push_id, lo, *([hi] if hi is not None else []), D.QUEUED, now]
    if limit is None:
        sql = f"UPDATE {table} SET status = %s, claimed_at = %s, attempts = attempts + 1 WHERE {where} "  # noqa: S608
    else:
        lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
        sql = (
            f"UPDATE {table} SET status = %s, claimed_at = %s, attempts = attempts + 1 "  # noqa: S608
            f"WHERE id IN (SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT %s{lock}) AND status = %s "
        )
        params += [limit, D.QUEUED]
    with connection.cursor() as cursor:
        cursor.execute(sql + "RETURNING id, subscriber_id, attempts", params)
        return sorted(cursor.fetchall())


def _range(qs, lo: int, hi: int | None):
    qs = qs.filter(id__gte=lo)
    return qs.filter(id__lt=hi) if hi is not None else qs


def _recipients(push: Push, policy: SendPolicy, sub_ids: list[int], now: dt.datetime) -> dict[int, dict[str, Any]]:
    """One query: each recipient's fields for rendering and everything the caps need."""
    window_start = now - dt.timedelta(days=policy.frequency_window_days)
    recent = (
        Delivery.objects.filter(subscriber_id=OuterRef("pk"), claimed_at__gte=window_start, status__in=COUNTED)
        .exclude(push_id=push.pk)
        .order_by()
        .values("subscriber_id")
        .annotate(c=Count("id"))
        .values("c")
    )
    qs = Subscriber.objects.filter(pk__in=sub_ids).annotate(
        recent=Coalesce(Subquery(recent, output_field=IntegerField()), Value(0))
    )
    topic_ids = list(push.article.topics.values_list("pk", flat=True)) if push.article_id else []
    if topic_ids:
        through = Subscriber.topics_opted_out.through
        qs = qs.annotate(opted_out=Exists(through.objects.filter(subscriber_id=OuterRef("pk"), topic_id__in=topic_ids)))
    else:
        qs = qs.annotate(opted_out=Value(False))
    if push.is_mass and policy.account_type == SendPolicy.AccountType.SERVICE:
        month = (
            Delivery.objects.filter(
                subscriber_id=OuterRef("pk"),
                claimed_at__gte=_month_start(now),
                status__in=COUNTED,
                channel__in=(Push.Channel.MASS_OPENID, Push.Channel.MASS_TAG),
            )
            .exclude(push_id=push.pk)
            .order_by()
            .values("subscriber_id")
            .annotate(c=Count("id"))
            .values("c")
        )
        qs = qs.annotate(mass_month=Coalesce(Subquery(month, output_field=IntegerField()), Value(0)))
    else:
        qs = qs.annotate(mass_month=Value(0))
    fields = {"openid", "is_following", "pushes_paused", "max_pushes_per_week", "last_interaction_at",
              *templating.SUBSCRIBER_FIELDS}  # fmt: skip
    return {row["id"]: row for row in qs.values(*fields, "recent", "opted_out", "mass_month")}


def _skip_reason(push: Push, policy: SendPolicy, sub: dict[str, Any] | None, now: dt.datetime) -> str:
    if sub is None:
        return "erased"
    if not sub["is_following"]:
        return "not_following"
    if sub["pushes_paused"]:
        return "paused"
    if sub["opted_out"]:
        return "topic_opt_out"
    cap = push.frequency_cap if push.frequency_cap is not None else policy.frequency_cap
    if sub["max_pushes_per_week"] is not None:
        cap = sub["max_pushes_per_week"] if push.frequency_cap is None else min(cap, sub["max_pushes_per_week"])
    if sub["recent"] >= cap:
        return "frequency_cap"
    if push.channel == Push.Channel.CUSTOM and (
        sub["last_interaction_at"] is None or sub["last_interaction_at"] < now - WINDOW_48H
    ):
        return "outside_window"
    service = policy.account_type == SendPolicy.AccountType.SERVICE
    if push.is_mass and service and sub["mass_month"] >= policy.mass_monthly_per_subscriber:
        return "quota_mass_monthly"
    return ""


Row = tuple[int, str, str, int | None, int | None, dt.datetime | None, dt.datetime | None, dt.datetime | None]


def _write(rows: Sequence[Row]) -> None:
    """Every row's outcome in ONE statement; only rows still "sending" (claimed by this task) are written."""
    if not rows:
        return
    table = Delivery._meta.db_table
    if connection.vendor == "postgresql":
        one = "(%s::bigint, %s::varchar, %s::varchar, %s::integer, %s::bigint, %s::timestamptz, %s::timestamptz, " \
              "%s::timestamptz)"  # fmt: skip
        sql = (
            f"UPDATE {table} AS d SET status = v.status, reason = v.reason, errcode = v.errcode, "  # noqa: S608
            "msgid = COALESCE(v.msgid, d.msgid), sent_at = COALESCE(v.sent_at, d.sent_at), "
            "not_before = v.not_before, finished_at = v.finished_at "
            f"FROM (VALUES {', '.join([one] * len(rows))}) AS v(id, status, reason, errcode, msgid, sent_at, "
            "not_before, finished_at) WHERE d.id = v.id AND d.status = %s"
        )
        params = [value for row in rows for value in row]
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, D.SENDING])
        return
    objs = []
    for pk, status, reason, errcode, msgid, sent_at, not_before, finished_at in rows:
        objs.append(Delivery(pk=pk, status=status, reason=reason, errcode=errcode, msgid=msgid, sent_at=sent_at,
                             not_before=not_before, finished_at=finished_at))  # fmt: skip
    Delivery.objects.bulk_update(objs, ["status", "reason", "errcode", "msgid", "sent_at", "not_before", "finished_at"])


def _mark_not_following(subscriber_ids: Iterable[int], now: dt.datetime) -> None:
    """43004: WeChat says they left. accounts has no service for an unfollow without its event, so one UPDATE."""
    ids = list(subscriber_ids)
    if ids:
        Subscriber.objects.filter(pk__in=ids, is_following=True).update(is_following=False, unsubscribed_at=now)


def deliveries_send_page(*, push_id: int, lo: int, hi: int | None, threads: int | None = None) -> PageOutcome:
    out = PageOutcome()
    push = (
        Push.objects.select_related("article", "template", "template__article", "mass_tag").filter(pk=push_id).first()
    )
    now = timezone.now()
    if push is None:  # deleted since the task was queued
        return out
    if push.status == Push.Status.CANCELLED:
        _range(Delivery.objects.filter(push_id=push_id, status=D.QUEUED), lo, hi).update(
            status=D.SKIPPED, reason="cancelled", finished_at=now
        )
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
    # written before the next is claimed: a worker killed mid-page leaves at most one chunk "sending" (unknown,
    # never resent); the rest of the page stays queued for the task's next delivery or the beat.
    every = None if push.is_mass else max(1, int(getattr(settings, "PUSH_WRITE_EVERY", 50)))
    renderer: Renderer | None = None
    retry_in: float | None = None
    while True:
        with transaction.atomic():  # the claim commits only once its start marks exist (see StartMarks)
            claimed = _claim(push_id, lo, hi, now, limit=every)
            marks = StartMarks.begin(push_id, [(d, a) for d, _s, a in claimed]) if every else None
        if not claimed:
            break
        out.claimed += len(claimed)
        renderer = renderer or Renderer(push)
        chunk_retry = _send_chunk(push, policy, renderer, claimed, now, threads, out, marks)
        if chunk_retry is not None:
            retry_in = chunk_retry if retry_in is None else max(retry_in, chunk_retry)
        if every is None or not Push.objects.filter(pk=push_id, status=Push.Status.SENDING).exists():
            break  # a mass page is one call; a push cancelled meanwhile sends no further chunk
        now = timezone.now()
    if out.claimed:
        Push.objects.filter(pk=push_id).update(updated_at=timezone.now())
    out.sent = out.counts.get(D.SENT, 0)
    out.skipped = out.counts.get(D.SKIPPED, 0)
    out.retry_in = retry_in
    if retry_in is None:
        push_finish_if_done(push_id=push_id)
    return out


def _send_chunk(push, policy, renderer, claimed, now, threads, out: PageOutcome, marks=None) -> float | None:
    """Skip, send and write the outcomes of one claimed chunk. Returns the retry delay when some must retry."""
    from wechat_crm.wechat.client import get_client

    subs = _recipients(push, policy, [c[1] for c in claimed], now)
    rows: list[Row] = []
    sendable: list[tuple[int, dict[str, Any], int]] = []
    for delivery_id, sub_id, attempts in claimed:
        reason = _skip_reason(push, policy, subs.get(sub_id), now)
        if reason:
            rows.append((delivery_id, D.SKIPPED, reason, None, None, None, None, now))
        else:
            sendable.append((delivery_id, subs[sub_id], attempts))
    sendable = _apply_quotas(push, policy, sendable, rows, now, claimed=len(claimed))
    retry: list[tuple[int, float, str, int | None]] = []
    gone: list[int] = []
    if sendable and not push.is_mass:
        build = renderer.template if push.channel == Push.Channel.TEMPLATE else renderer.custom
        client = get_client()
        send = client.send_template_many if push.channel == Push.Channel.TEMPLATE else client.send_custom_many
        payloads = [build(sub) for _d, sub, _a in sendable]
        block = threads or settings.PUSH_SEND_THREADS
        hooks = marks.hooks([(d, a) for d, _s, a in sendable], block=block) if marks else {}
        results = send(payloads, threads=threads, **hooks)
        _classify(sendable, results, rows, retry, gone, policy)
    elif sendable:
        _send_mass(push, sendable, rows, retry, policy)
    delay = None
    if retry:
        delay = retry_delay(
            retry_after=max(r[1] for r in retry),
            attempt=max(r[3] for r in retry),
            cap=float(policy.max_retry_delay_seconds),
        )
        when = timezone.now() + dt.timedelta(seconds=delay)
        rows += [(d, D.QUEUED, reason[:64], None, None, None, when, None) for d, _ra, reason, _a in retry]
    _write(rows)
    if marks is not None:
        marks.forget()
    _mark_not_following(gone, now)
    for row in rows:
        out.counts[row[1]] = out.counts.get(row[1], 0) + 1
    return delay


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
        try:
            pipe = redis.pipeline()
            pipe.sadd(f"{marks.key}:claimed", *(_member(*claim) for claim in claims))
            pipe.sadd(f"{marks.key}:started", "-")  # exists from now on, so that its TTL is set once
            pipe.expire(f"{marks.key}:claimed", cls.TTL)
            pipe.expire(f"{marks.key}:started", cls.TTL)
            pipe.execute()
        except Exception:
            logger.warning("push %s: start marks unavailable; a crash would leave this chunk unknown", push_id)
            return None
        return marks

    def hooks(self, order: Sequence[tuple[int, int]], *, block: int) -> dict[str, Any]:
        """The client's before_send / after_send for the chunk's messages sent in `order` ((delivery id, attempts)
        each): starts are marked `block` messages at a time (one round trip per block; marking a message that then
        never leaves is safe: it becomes unknown), acceptances ACCEPTED_BATCH at a time."""
        members = [_member(*claim) for claim in order]

        def before_send(index: int) -> None:
            with self._started_lock:
                if index < self._started_upto:
                    return
                upto = min(len(members), max(index + 1, self._started_upto + max(1, block)))
                self.redis.sadd(f"{self.key}:started", *members[self._started_upto : upto])
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
        pipe = self.redis.pipeline()
        pipe.hset(f"{self.key}:accepted", mapping=batch)
        pipe.expire(f"{self.key}:accepted", self.TTL)
        pipe.execute()

    def forget(self) -> None:
        try:
            self.redis.delete(f"{self.key}:claimed", f"{self.key}:started", f"{self.key}:accepted")
        except Exception:
            logger.warning("could not delete %s (it expires)", self.key)

    @classmethod
    def recover(cls, push_id: int, stuck: Iterable[tuple[int, int]]) -> tuple[set[int], dict[int, int | None]]:
        """Of the rows stuck "sending" ((delivery id, attempts) each): the ids whose message provably never started,
        and those WeChat accepted (id -> msgid). Forgets the chunks it read."""
        from wechat_crm.wechat import ratelimit

        redis = ratelimit.redis_client()
        stuck_members = {_member(*claim): claim[0] for claim in stuck}
        unsent: set[int] = set()
        accepted: dict[int, int | None] = {}
        if redis is None or not stuck_members:
            return unsent, accepted
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
            return set(), {}
        return unsent, accepted


def _member(delivery_id: int, attempts: int) -> str:
    """A claim of a delivery row, as StartMarks names it."""
    return f"{delivery_id}:{attempts}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def deliveries_recover_accepted(accepted: dict[int, int | None], *, at: dt.datetime) -> None:
    """Rows still "sending" that WeChat accepted before their worker died: sent, with WeChat's msgid (one statement)."""
    _write([(delivery_id, D.SENT, "", None, msgid, at, None, None) for delivery_id, msgid in accepted.items()])


def _classify(chunk, results, rows: list, retry: list, gone: list, policy: SendPolicy) -> None:
    """Each result of a chunk becomes its row's outcome, or a retry later."""
    from wechat_crm.wechat.errors import Outcome

    sent_at = timezone.now()
    for (delivery_id, sub, attempts), result in zip(chunk, results, strict=True):
        c = result.classification
        if c.outcome in (Outcome.SENT, Outcome.SENT_ALREADY):
            rows.append((delivery_id, D.SENT, "", None, result.msgid, sent_at, None, None))
        elif c.outcome == Outcome.NOT_FOLLOWING:
            rows.append((delivery_id, D.FAILED, "not_following", c.errcode, None, None, None, sent_at))
            gone.append(sub["id"])
        elif c.outcome == Outcome.UNKNOWN:
            rows.append((delivery_id, D.UNKNOWN, c.reason[:64], c.errcode, None, None, None, sent_at))
        elif c.outcome == Outcome.OUTSIDE_WINDOW:
            rows.append((delivery_id, D.SKIPPED, "outside_window", c.errcode, None, None, None, sent_at))
        elif c.outcome == Outcome.RETRY_LATER:
            if attempts >= policy.max_attempts:
                rows.append((delivery_id, D.ERROR, f"retries_exhausted:{c.reason}"[:64], c.errcode, None, None,
                                 None, sent_at))  # fmt: skip
            else:
                retry.append((delivery_id, c.retry_after or 1.0, c.reason, attempts))
        else:
            rows.append((delivery_id, D.ERROR, c.reason[:64], c.errcode, None, None, None, sent_at))


def _apply_quotas(push, policy, sendable, rows, now, *, claimed: int):
    """WeChat's quotas, counted from our own delivery rows: template messages per day, mass sends per day."""
    if push.channel == Push.Channel.TEMPLATE:
        day = _day_start(now)
        # Cheap bound first: every template delivery claimed today belongs to a push that started today, finished
        # today or is sending; when their recipients fit in the quota, the rows need not be counted.
        bound = Push.objects.filter(
            Q(started_at__gte=day) | Q(finished_at__gte=day) | Q(status=Push.Status.SENDING),
            channel=Push.Channel.TEMPLATE,
        ).aggregate(n=Sum("recipients"))["n"]
        if (bound or 0) + claimed <= policy.template_daily_quota:
            return sendable
        used = Delivery.objects.filter(channel=Push.Channel.TEMPLATE, claimed_at__gte=day, status__in=COUNTED).count()
        allowed = max(0, policy.template_daily_quota - (used - claimed))
        over = sendable[allowed:]
        rows += [(d, D.SKIPPED, "quota_template_daily", None, None, None, None, now) for d, _s, _a in over]
        return sendable[:allowed]
    if push.is_mass and policy.account_type == SendPolicy.AccountType.SUBSCRIPTION:
        pushes_today = (
            MassBatch.objects.filter(sent_at__gte=_day_start(now)).exclude(push_id=push.pk).values("push_id").distinct()
        )
        if pushes_today.count() >= policy.mass_daily_quota:
            rows += [(d, D.SKIPPED, "quota_mass_daily", None, None, None, None, now) for d, _s, _a in sendable]
            return []
    return sendable


def _send_mass(push: Push, sendable, rows, retry, policy) -> None:
    """One mass call for the page (up to 10,000 openids, or the tag), idempotent through its clientmsgid."""
    from wechat_crm.exceptions import ApplicationError
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import Outcome, WeChatError, classify

    client = get_client()
    if push.channel == Push.Channel.NEWS:  # the article's WeChat draft as mpnews (publishing.services.news)
        from publishing.services import news

        openids = [sub["openid"] for _d, sub, _a in sendable] if news.by_openid(push) else None
        target = f"d{sendable[0][0]}" if openids is not None else ("tag" if push.mass_tag_id else "all")
        clientmsgid = f"push{push.pk}-{target}"

        def call() -> Any:
            sent = news.news_send(push=push, clientmsgid=clientmsgid, openids=openids)
            return {"msg_id": sent.msg_id}
    else:
        content = {"msgtype": "text", "text": {"content": Renderer(push).mass_text()}}
        if push.channel == Push.Channel.MASS_TAG:
            clientmsgid = f"push{push.pk}-tag"
            body = {"filter": {"is_to_all": False, "tag_id": push.mass_tag.wechat_tag_id}, **content}
            endpoint = "cgi-bin/message/mass/sendall"
        else:
            clientmsgid = f"push{push.pk}-d{sendable[0][0]}"
            body = {"touser": [sub["openid"] for _d, sub, _a in sendable], **content}
            endpoint = "cgi-bin/message/mass/send"
        body["clientmsgid"] = clientmsgid

        def call() -> Any:
            return client.call("POST", client.base_url + endpoint, group="mass", idempotent=True,
                               body=json.dumps(body, ensure_ascii=False).encode())  # fmt: skip

    batch, _created = MassBatch.objects.get_or_create(push=push, clientmsgid=clientmsgid)
    attempts = max(a for _d, _s, a in sendable)
    now = timezone.now()
    if batch.sent_at is not None:
        result, c = {"msg_id": batch.msg_id}, classify(None)
    else:
        try:
            result, c = call(), classify(None)
        except WeChatError as exc:
            result, c = {}, classify(exc)
        except ApplicationError as exc:  # refused before any send (a WeChat rule, an article WeChat would refuse)
            reason = str(exc.extra.get("rule") or "refused")[:64]
            rows += [(d, D.ERROR, reason, exc.extra.get("errcode"), None, None, None, now) for d, _s, _a in sendable]
            return
    msg_id = result.get("msg_id") if isinstance(result, dict) else None
    if c.outcome in (Outcome.SENT, Outcome.SENT_ALREADY):
        MassBatch.objects.filter(pk=batch.pk).update(sent_at=batch.sent_at or now, msg_id=msg_id)
        rows += [(d, D.SENT, "", None, msg_id, now, None, None) for d, _s, _a in sendable]
    elif c.outcome == Outcome.RETRY_LATER and attempts < policy.max_attempts:
        retry += [(d, c.retry_after or 1.0, c.reason, a) for d, _s, a in sendable]
    else:
        status = D.UNKNOWN if c.outcome == Outcome.UNKNOWN else D.ERROR
        rows += [(d, status, c.reason[:64], c.errcode, None, None, None, now) for d, _s, _a in sendable]


# --- finishing ------------------------------------------------------------------------------------------------------


def push_finish_if_done(*, push_id: int) -> bool:
    """sending -> sent, or partially_failed when some deliveries ended in error or unknown. Once (state guard)."""
    from .pushes import push_set_status

    if Delivery.objects.filter(push_id=push_id, status__in=OPEN).exists():
        return False
    with transaction.atomic():
        push = Push.objects.select_for_update().filter(pk=push_id, status=Push.Status.SENDING).first()
        if push is None or push.resolved_at is None:
            return False
        if Delivery.objects.filter(push_id=push_id, status__in=OPEN).exists():
            return False
        bad = Delivery.objects.filter(push_id=push_id, status__in=(D.ERROR, D.UNKNOWN)).exists()
        push_set_status(push, to=Push.Status.PARTIALLY_FAILED if bad else Push.Status.SENT)
    return True


# --- WeChat's reports ------------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def delivery_job_finish(interaction: Any) -> int:
    """TEMPLATESENDJOBFINISH: success -> delivered; "failed:user block" / "failed: system failed" -> failed.

    Matched by msgid. WeChat may report before the page that sent the message has written its msgid: then the
    update is tried again by content.tasks.delivery_job_finish_later a few seconds later (for about 5 minutes)."""
    updated, matched = _job_finish_apply(interaction)
    if not matched and getattr(interaction, "pk", None):
        from ..tasks import delivery_job_finish_later

        interaction_id = interaction.pk
        transaction.on_commit(lambda: delivery_job_finish_later.apply_async((interaction_id, 1), countdown=2))
    return updated


def delivery_job_finish_retry(*, interaction_id: int, attempt: int) -> bool:
    """The later try of an unmatched report. True when it is done (matched, or given up after 8 attempts)."""
    from accounts.models import Interaction

    interaction = Interaction.objects.filter(pk=interaction_id).first()
    if interaction is None:
        return True
    _updated, matched = _job_finish_apply(interaction)
    return matched or attempt >= JOB_FINISH_ATTEMPTS


def _job_finish_apply(interaction: Any) -> tuple[int, bool]:
    data = interaction.data or {}
    msgid = _int(interaction.msg_id or data.get("MsgID"))
    status = (getattr(interaction, "status", "") or data.get("Status") or "").strip()
    if msgid is None:
        return 0, True
    if status == "success":
        new, reason = D.DELIVERED, ""
    else:
        new, reason = D.FAILED, (status.replace("failed:", "").strip().replace(" ", "_") or "failed")[:64]
    updated = Delivery.objects.filter(msgid=msgid, status__in=(D.SENT, D.UNKNOWN, D.SENDING)).update(
        status=new, reason=reason, finished_at=timezone.now()
    )
    return updated, bool(updated) or Delivery.objects.filter(msgid=msgid).exists()


def mass_job_finish(interaction: Any) -> int:
    """MASSSENDJOBFINISH: the batch's totals, and for articles their URLs and WeChat's copyright check (set, not
    added: a repeated report changes nothing)."""
    data = interaction.data or {}
    msg_id = _int(interaction.msg_id or data.get("MsgID"))
    if msg_id is None:
        return 0
    from wechat_crm.wechat.client.publishing import mass_job_articles

    article_urls, copyright_check = mass_job_articles(data)
    return MassBatch.objects.filter(msg_id=msg_id).update(
        article_urls={str(k): v for k, v in article_urls.items()},
        copyright_check=copyright_check,
        job_status=(data.get("Status") or "")[:64],
        total_count=_int(data.get("TotalCount")),
        filter_count=_int(data.get("FilterCount")),
        sent_count=_int(data.get("SentCount")),
        error_count=_int(data.get("ErrorCount")),
    )


# --- "Send a test to me" ------------------------------------------------------------------------------------------


def push_send_test(*, push: Push, user: Any, wxname: str = "") -> int | None:
    """Send the rendered message to the operator's own openid (OperatorProfile). Returns WeChat's msgid.

    Raises PushInvalid without a linked openid, or with WeChat's error."""
    from wechat_crm.wechat.client import get_client

    profile = OperatorProfile.objects.filter(user_id=getattr(user, "pk", None)).first()
    if profile is None or not profile.openid:
        raise PushInvalid(_("Link your own openid first (Content > Operator profiles)."))
    push = Push.objects.select_related("article", "template", "template__article").get(pk=push.pk)
    if push.channel == Push.Channel.NEWS:  # WeChat's preview of the draft (message/mass/preview), no 48-hour window
        from publishing.services.news import news_preview

        return news_preview(push=push, user=user, wxname=wxname)
    sub = Subscriber.objects.filter(openid=profile.openid).values("id", *templating.SUBSCRIBER_FIELDS).first()
    if sub is None:
        sub = dict(templating.SAMPLE_CONTEXT["subscriber"], id=0)
    sub["openid"] = profile.openid
    renderer = Renderer(push)
    client = get_client()
    if push.channel == Push.Channel.TEMPLATE:
        if push.template_id is None:
            raise PushInvalid(_("A template message push needs a message template."))
        result = client.send_template_many([renderer.template(sub)], threads=1)[0]
    elif push.channel == Push.Channel.CUSTOM:
        result = client.send_custom_many([renderer.custom(sub)], threads=1)[0]
    else:  # a mass message previews as a customer-service text (WeChat's mass preview needs a media id)
        message = {"touser": profile.openid, "msgtype": "text", "text": {"content": renderer.mass_text()}}
        result = client.send_custom_many([message], threads=1)[0]
    if not result.ok:
        raise PushInvalid(
            _("WeChat refused the test message: %(error)s") % {"error": result.error.message},
            extra={"errcode": result.error.errcode},
        )
    return result.msgid


def push_progress(*, push: Push) -> dict[str, Any]:
    """Counts by delivery status, for the live progress bar."""
    counts = dict(Delivery.objects.filter(push_id=push.pk).order_by().values_list("status").annotate(n=Count("id")))
    total = sum(counts.values())
    done = total - sum(counts.get(s, 0) for s in OPEN)
    return {
        "push": push.pk,
        "status": push.status,
        "status_display": push.get_status_display(),
        "recipients": total,
        "done": done,
        "percent": round(100 * done / total, 1) if total else (100.0 if push.status in ("sent",) else 0.0),
        "counts": {s: counts.get(s, 0) for s in D.values},
    }
