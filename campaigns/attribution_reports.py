"""Attribution and campaign reports: who converted among a group's members, credited to channels, campaigns and
content (campaigns.attribution fills the columns they read), and a campaign's summary."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Subscriber
from content.models import Article
from wechat_crm.db import reads_reports
from wechat_crm.exceptions import ApplicationError

from .funnel import FunnelQuery
from .models import Campaign, Channel, Conversion
from .stages import ORDER


def _members(query: FunnelQuery) -> QuerySet[Subscriber]:
    """The report's people: subscribers who first followed in [start, end], with the query's filters (as the funnel
    report and the drop-offs)."""
    lo, hi = query.bounds()
    members = Subscriber.objects.filter(followed_at__gte=lo, followed_at__lt=hi)
    if query.channel_id is not None:
        members = members.filter(source_channel_id=query.channel_id)
    if query.campaign_id is not None:
        members = members.filter(
            source_channel_id__in=Campaign.channels.through.objects.filter(campaign_id=query.campaign_id).values(
                "channel_id"
            )
        )
    if query.tag is not None:
        members = members.filter(
            Exists(Subscriber.tags.through.objects.filter(subscriber_id=OuterRef("pk"), tag__name=query.tag))
        )
    return members.order_by()


def _credited(query: FunnelQuery) -> QuerySet[Conversion]:
    """The conversions that occurred in [start, end], with the query's filters (first-touch channel, the campaign's
    channels, the converting subscriber's tag)."""
    lo, hi = query.bounds()
    conversions = Conversion.objects.filter(occurred_at__gte=lo, occurred_at__lt=hi)
    if query.channel_id is not None:
        conversions = conversions.filter(channel_id=query.channel_id)
    if query.campaign_id is not None:
        conversions = conversions.filter(
            channel_id__in=Campaign.channels.through.objects.filter(campaign_id=query.campaign_id).values("channel_id")
        )
    if query.tag is not None:
        conversions = conversions.filter(
            Exists(Subscriber.tags.through.objects.filter(subscriber_id=OuterRef("subscriber_id"), tag__name=query.tag))
        )
    return conversions.order_by()


def _converted_within(window_days: int) -> Q:
    """Converted within the window after the first follow (the funnel's window; a conversion before the follow
    counts, as a zero delay does in the funnel)."""
    return Q(converted_at__isnull=False, converted_at__lte=F("followed_at") + timedelta(days=window_days))


@reads_reports
def attribution_report(*, query: FunnelQuery, by: str) -> list[dict[str, Any]]:
    """Per first-touch channel, campaign or last-touch content: the conversions that occurred in [start, end] credited
    to it, the distinct people behind them and their revenue; and its conversion rate, counted on the same people
    on both sides: of its members (subscribers who first followed in the period through that channel, through the
    campaign's channels, or whose first engagement was that content: the funnel's groups), the share who converted
    within `window_days` after their follow. Never above 1, and the same whenever the conversions were processed.
    The query's channel, campaign and tag filters apply to both."""
    if by not in ("channel", "campaign", "content"):
        raise ApplicationError(_("`by` must be one of: channel, campaign, content."))
    members, conversions = _members(query), _credited(query)
    converted = Count("followed_at", filter=_converted_within(query.window_days))
    totals = {"conversions": Count("*"), "subscribers": Count("subscriber_id", distinct=True), "revenue": Sum("value")}
    if by == "campaign":
        return _attribution_by_campaign(query, members, conversions, converted, totals)
    member_key, credit_key, model, label = {
        "channel": ("source_channel_id", "channel_id", Channel, "name"),
        "content": ("engaged_content_id", "content_id", Article, "title"),
    }[by]
    groups = {
        key: (n, c)
        for key, n, c in members.values_list(member_key)
        .annotate(n=Count("*"), c=converted)
        .values_list(member_key, "n", "c")
    }
    credits = {row.pop("key"): row for row in conversions.values(key=F(credit_key)).annotate(**totals)}
    keys = set(groups) | set(credits)
    labels = dict(model.objects.filter(pk__in=[k for k in keys if k is not None]).values_list("pk", label))
    result = [_attribution_row(key, labels.get(key), credits.get(key), *groups.get(key, (0, 0))) for key in keys]
    result.sort(key=lambda r: (-r["revenue"], -r["converted"], r["key"] is None, r["key"] or 0))
    return result


def _attribution_row(key: Any, label: Any, credit: dict[str, Any] | None, base: int, converted: int) -> dict[str, Any]:
    credit = credit or {}
    return {
        "key": key,
        "label": label or str(_("(none)")),
        "conversions": credit.get("conversions") or 0,
        "subscribers": credit.get("subscribers") or 0,
        "revenue": Decimal(credit.get("revenue") or 0),
        "base": base,
        "converted": converted,
        "conversion_rate": round(converted / base, 4) if base else None,
    }


def _attribution_by_campaign(
    query: FunnelQuery, members: QuerySet, conversions: QuerySet, converted: Count, totals: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per campaign: credited with the conversions whose first-touch channel is one of its channels or whose
    last-touch push is one of its pushes; its members are the followers through its channels (summed from one pass
    over the members by channel: each has one first-touch channel, so the sums count distinct people)."""
    by_channel = {
        channel_id: (n, c)
        for channel_id, n, c in members.filter(source_channel_id__isnull=False)
        .values_list("source_channel_id")
        .annotate(n=Count("followed_at"), c=converted)
        .values_list("source_channel_id", "n", "c")
    }
    result = []
    for campaign in Campaign.objects.prefetch_related("channels", "pushes"):
        channel_ids = [c.pk for c in campaign.channels.all()]
        push_ids = [p.pk for p in campaign.pushes.all()]
        credit = conversions.filter(Q(channel_id__in=channel_ids) | Q(push_id__in=push_ids)).aggregate(**totals)
        n = sum(by_channel.get(pk, (0, 0))[0] for pk in channel_ids)
        c = sum(by_channel.get(pk, (0, 0))[1] for pk in channel_ids)
        result.append(_attribution_row(campaign.pk, campaign.name, credit, n, c))
    result.sort(key=lambda r: (-r["revenue"], -r["converted"], r["key"]))
    return result


@reads_reports
def campaign_summary(*, campaign: Campaign) -> dict[str, Any]:
    """Follows through the campaign's channels in its period, their current stages, conversions and revenue."""
    channel_ids = list(campaign.channels.values_list("pk", flat=True))
    push_ids = list(campaign.pushes.values_list("pk", flat=True))
    followers = Subscriber.objects.filter(source_channel_id__in=channel_ids)
    tz = timezone.get_current_timezone()
    if campaign.starts_on:
        followers = followers.filter(followed_at__gte=datetime.combine(campaign.starts_on, time.min, tzinfo=tz))
    if campaign.ends_on:
        end = datetime.combine(campaign.ends_on + timedelta(days=1), time.min, tzinfo=tz)
        followers = followers.filter(followed_at__lt=end)
    stages = dict(followers.values_list("stage").annotate(n=Count("id")).values_list("stage", "n"))
    conversions = Conversion.objects.filter(Q(channel_id__in=channel_ids) | Q(push_id__in=push_ids)).aggregate(
        conversions=Count("id"), revenue=Sum("value")
    )
    return {
        "follows": sum(stages.values()),
        "stages": {str(stage): stages.get(stage, 0) for stage in ORDER},
        "conversions": conversions["conversions"],
        "revenue": conversions["revenue"] or Decimal("0"),
    }
