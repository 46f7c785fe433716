"""Quiet hours, WeChat's quotas (template messages per day, mass sends) and subscription-notice consent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum

from content.models import Delivery, MassBatch, Push, SendPolicy

from ..models import OutboundMessage

# --- quiet hours and quotas ------------------------------------------------------------------------------------------


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


def templates_used_today(*, now: dt.datetime, upper_bound: bool = False) -> int:
    """Template messages claimed today (pushes' deliveries and one-subscriber messages): WeChat's daily quota.
    `upper_bound`: a cheap bound instead (today's template pushes' recipients, not their rows)."""
    from content.services.deliveries.rows import COUNTED

    day = day_start(now)
    single = OutboundMessage.objects.filter(kind=OutboundMessage.Kind.TEMPLATE, created_at__gte=day).exclude(
        status__in=(OutboundMessage.Status.FAILED, OutboundMessage.Status.SKIPPED)
    )
    if upper_bound:
        pushes = Push.objects.filter(
            Q(started_at__gte=day) | Q(finished_at__gte=day) | Q(status=Push.Status.SENDING),
            channel=Push.Channel.TEMPLATE,
        ).aggregate(n=Sum("recipients"))["n"]
        return (pushes or 0) + single.count()
    return (
        single.count()
        + Delivery.objects.filter(channel=Push.Channel.TEMPLATE, claimed_at__gte=day, status__in=COUNTED).count()
    )


def mass_quota_reached(*, policy: SendPolicy, now: dt.datetime, push_id: int | None = None) -> bool:
    """A subscription account's mass sends of the day are used up (one a day)."""
    if policy.account_type != SendPolicy.AccountType.SUBSCRIPTION:
        return False
    today = MassBatch.objects.filter(sent_at__gte=day_start(now))
    if push_id is not None:
        today = today.exclude(push_id=push_id)
    return today.values("push_id").distinct().count() >= policy.mass_daily_quota


# --- consent (subscription notices) ----------------------------------------------------------------------------------


def consented(*, subscriber_ids: Collection[int], notice_template: Any, now: dt.datetime) -> set[int]:
    """The consent rule for subscription notices: the subscribers (of `subscriber_ids`) whose recorded consent to
    `notice_template` allows one more notice now (accepted, not withdrawn; a one-time acceptance not used yet), as
    content.services.notices records it from WeChat's popup and change events. One query for all of them."""
    if notice_template is None:
        return set()
    from content.services.notices import notice_consented_ids

    return notice_consented_ids(subscriber_ids=subscriber_ids, template=notice_template)
