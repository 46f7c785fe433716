"""The caps and quotas checked before WeChat is called: quiet hours, each recipient's state and frequency cap,
WeChat's customer-service window, and WeChat's daily and monthly quotas, counted from our own delivery rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.models import Subscriber

from ... import templating
from ...models import Delivery, MassBatch, Push, SendPolicy
from .rows import COUNTED, DeliveryUpdate, Sendable, skipped

WINDOW_48H = dt.timedelta(hours=48)


class QuotaSplit(NamedTuple):
    """The recipients within WeChat's quotas, and the outcomes of those over them (skipped)."""

    sendable: list[Sendable]
    over: list[DeliveryUpdate]


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


def day_start(now: dt.datetime) -> dt.datetime:
    """Midnight in Beijing: WeChat's quotas reset then."""
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: dt.datetime) -> dt.datetime:
    return day_start(now).replace(day=1)


def recipients(push: Push, policy: SendPolicy, sub_ids: list[int], now: dt.datetime) -> dict[int, dict[str, Any]]:
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
                claimed_at__gte=month_start(now),
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
    if push.channel == Push.Channel.NOTICE:  # consent per template, recorded from WeChat's popup and change events
        from ..notices import notice_consented_ids

        consented = notice_consented_ids(subscriber_ids=sub_ids, template=push.notice_template)
    fields = {"openid", "is_following", "pushes_paused", "max_pushes_per_week", "last_interaction_at",
              *templating.SUBSCRIBER_FIELDS}  # fmt: skip
    rows = {row["id"]: row for row in qs.values(*fields, "recent", "opted_out", "mass_month")}
    for row in rows.values():
        row["notice_consented"] = push.channel != Push.Channel.NOTICE or row["id"] in consented
    return rows


def skip_reason(push: Push, policy: SendPolicy, sub: dict[str, Any] | None, now: dt.datetime) -> str:
    """Why the recipient gets nothing ("" when they do)."""
    if sub is None:
        return "erased"
    if not sub["is_following"]:
        return "not_following"
    if not sub.get("notice_consented", True):
        return "no_consent"
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


def quotas_apply(
    push: Push, policy: SendPolicy, sendable: Sequence[Sendable], now: dt.datetime, *, claimed: int
) -> QuotaSplit:
    """WeChat's quotas, counted from our own delivery rows: template messages per day, mass sends per day."""
    sendable = list(sendable)
    if push.channel == Push.Channel.TEMPLATE:
        day = day_start(now)
        # Cheap bound first: every template delivery claimed today belongs to a push that started today, finished
        # today or is sending; when their recipients fit in the quota, the rows need not be counted.
        bound = Push.objects.filter(
            Q(started_at__gte=day) | Q(finished_at__gte=day) | Q(status=Push.Status.SENDING),
            channel=Push.Channel.TEMPLATE,
        ).aggregate(n=Sum("recipients"))["n"]
        if (bound or 0) + claimed <= policy.template_daily_quota:
            return QuotaSplit(sendable, [])
        used = Delivery.objects.filter(channel=Push.Channel.TEMPLATE, claimed_at__gte=day, status__in=COUNTED).count()
        allowed = max(0, policy.template_daily_quota - (used - claimed))
        over = [skipped(s.delivery_id, "quota_template_daily", now) for s in sendable[allowed:]]
        return QuotaSplit(sendable[:allowed], over)
    if push.is_mass and policy.account_type == SendPolicy.AccountType.SUBSCRIPTION:
        pushes_today = (
            MassBatch.objects.filter(sent_at__gte=day_start(now)).exclude(push_id=push.pk).values("push_id").distinct()
        )
        if pushes_today.count() >= policy.mass_daily_quota:
            return QuotaSplit([], [skipped(s.delivery_id, "quota_mass_daily", now) for s in sendable])
    return QuotaSplit(sendable, [])
