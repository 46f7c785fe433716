"""Reads of publishing: WeChat's statistics beside our own figures, per push and article, per topic, for the
account by source, and a period-over-period comparison (the last 7 or 28 days against the 7 or 28 before)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet, Sum

from content.models import MassBatch, Push, Topic

from .models import AccountDailyStat, ArticleDailyStat, Draft, MediaAsset, Publication
from .services.stats import wechat_today

R = AccountDailyStat.Report
ARTICLE_SUMS = ("read_user", "read_count", "share_user", "share_count", "fav_user")
# WeChat's user_source codes of its follower report, by name.
SOURCES = {"0": "other", "1": "search", "17": "profile_card", "30": "qr_code", "51": "after_payment",
           "57": "article_account_name", "100": "ads", "149": "mini_program", "161": "reprint"}  # fmt: skip


def media_list(*, kind: str | None = None) -> QuerySet[MediaAsset]:
    qs = MediaAsset.objects.all()
    return qs.filter(kind=kind) if kind else qs


def drafts_list() -> QuerySet[Draft]:
    return Draft.objects.prefetch_related("items__article").order_by("-id")


def publications_list() -> QuerySet[Publication]:
    return Publication.objects.select_related("draft").order_by("-id")


def push_wechat_figures(*, push: Push) -> dict[str, Any]:
    """WeChat's reads and shares of the push's articles (its statistics), per article and in all, with where the reads
    came from (the chat against other sources), the batches' article URLs and copyright checks."""
    batches = list(MassBatch.objects.filter(push_id=push.pk).order_by("id"))
    data_ids = [b.msg_data_id for b in batches if b.msg_data_id]
    rows = ArticleDailyStat.objects.filter(msg_data_id__in=data_ids)
    articles = []
    for index in sorted(set(rows.values_list("index", flat=True))):
        of_article = rows.filter(index=index)
        sums = of_article.aggregate(**{k: Sum(k) for k in ARTICLE_SUMS})
        latest = of_article.exclude(read_from_session=None).order_by("-ref_date").first()
        urls = [b.article_urls.get(str(index)) for b in batches if b.article_urls.get(str(index))]
        articles.append(
            {
                "index": index,
                "title": of_article.order_by("-ref_date").values_list("title", flat=True).first() or "",
                "url": urls[0] if urls else "",
                **{k: v or 0 for k, v in sums.items()},
                "read_from_session": latest.read_from_session if latest else None,
                "read_from_other": latest.read_from_other if latest else None,
            }
        )
    totals = {k: sum(a[k] for a in articles) for k in ARTICLE_SUMS}
    return {
        "articles": articles,
        "totals": totals,
        "days": sorted({d.isoformat() for d in rows.values_list("ref_date", flat=True)}),
        "copyright_checks": [b.copyright_check for b in batches if b.copyright_check],
        "failure": getattr(getattr(push, "news", None), "failure", ""),
    }


def push_report_with_wechat(*, push: Push) -> dict[str, Any]:
    """Our report of the push (clicks, unfollows ...) and conversions, with WeChat's figures beside them."""
    from campaigns.models import Conversion
    from content.selectors import push_report

    report = push_report(push=push)
    report["conversions"] = Conversion.objects.filter(push_id=push.pk).count()
    report["wechat"] = push_wechat_figures(push=push)
    return report


def topic_wechat_figures() -> list[dict[str, Any]]:
    """Per topic: WeChat's reads and shares of the pushes of its articles, beside our own topic report."""
    from content.selectors import topic_report

    ours = {row["topic"]: row for row in topic_report()}
    out = []
    for topic in Topic.objects.all():
        data_ids = MassBatch.objects.filter(push__article__topics=topic, msg_data_id__isnull=False).values(
            "msg_data_id"
        )
        sums = ArticleDailyStat.objects.filter(msg_data_id__in=data_ids).aggregate(**{k: Sum(k) for k in ARTICLE_SUMS})
        out.append({**ours.get(topic.slug, {"topic": topic.slug}), "wechat": {k: v or 0 for k, v in sums.items()}})
    return out


def account_figures(*, begin: dt.date, end: dt.date) -> dict[str, Any]:
    """WeChat's follower figures over [begin, end]: new, cancelled and net by source, the cumulative count at the
    end, and reads and shares in all."""
    days = AccountDailyStat.objects.filter(ref_date__gte=begin, ref_date__lte=end)
    by_source = []
    followers = days.filter(report=R.FOLLOWERS)
    for source, new, cancel in (
        followers.order_by().values_list("source").annotate(n=Sum("new_user"), c=Sum("cancel_user")).order_by("source")
    ):
        by_source.append({"source": source, "name": SOURCES.get(source, source), "new": new, "cancelled": cancel,
                          "net": new - cancel})  # fmt: skip
    new = sum(r["new"] for r in by_source)
    cancelled = sum(r["cancelled"] for r in by_source)
    cumulate = days.filter(report=R.CUMULATE).order_by("-ref_date").values_list("cumulate_user", flat=True).first()
    reads = days.filter(report=R.READ, source="99999999").aggregate(r=Sum("read_user"), c=Sum("read_count"))
    shares = days.filter(report=R.SHARE).aggregate(u=Sum("share_user"), c=Sum("share_count"))
    return {
        "begin": begin.isoformat(),
        "end": end.isoformat(),
        "new": new,
        "cancelled": cancelled,
        "net": new - cancelled,
        "cumulative": cumulate,
        "reads": reads["r"] or 0,
        "read_count": reads["c"] or 0,
        "sharers": shares["u"] or 0,
        "shares": shares["c"] or 0,
        "by_source": by_source,
    }


def _change(now: float | None, before: float | None) -> float | None:
    if now is None or before is None or not before:
        return None
    return round((now - before) / before, 4)


def period_compare(*, days: int, today: dt.date | None = None) -> dict[str, Any]:
    """The last `days` days (7 or 28, up to yesterday) against the `days` before, as WeChat's console shows them."""
    if days not in (7, 28):
        raise ValueError("days must be 7 or 28")
    end = (today or wechat_today()) - dt.timedelta(days=1)
    current = account_figures(begin=end - dt.timedelta(days=days - 1), end=end)
    previous_end = end - dt.timedelta(days=days)
    previous = account_figures(begin=previous_end - dt.timedelta(days=days - 1), end=previous_end)
    keys = ("new", "cancelled", "net", "cumulative", "reads", "read_count", "sharers", "shares")
    article_range = Q(ref_date__gte=current["begin"], ref_date__lte=current["end"])
    return {
        "days": days,
        "current": current,
        "previous": previous,
        "change": {k: _change(current[k], previous[k]) for k in keys},
        "articles": ArticleDailyStat.objects.filter(article_range).aggregate(**{k: Sum(k) for k in ARTICLE_SUMS}),
    }
