"""Reads of the content library and of tracked-link clicks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Min, QuerySet

from accounts import kinds
from accounts.models import Interaction
from wechat_crm.db import reads_reports

from .models import Article, MessageTemplate


def articles_list(*, topic: str | None = None, status: str | None = None) -> QuerySet[Article]:
    qs = Article.objects.prefetch_related("topics")
    if status:
        qs = qs.filter(status=status)
    if topic:
        qs = qs.filter(topics__slug=topic)
    return qs


def article_for_page(*, slug: str, user: Any) -> Article | None:
    """The article served at /c/<slug>/: published, or any status for a staff user (preview); else None."""
    article = Article.objects.filter(slug=slug).prefetch_related("topics").first()
    if article is None:
        return None
    if article.status == Article.Status.PUBLISHED:
        return article
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return article
    return None


def templates_list() -> QuerySet[MessageTemplate]:
    return MessageTemplate.objects.select_related("article")


def link_clicks(*, push_id: int | None = None, content_id: int | None = None) -> QuerySet[Interaction]:
    """Click interactions of tracked links, optionally of one push and/or one content."""
    qs = Interaction.objects.filter(kind=Interaction.Kind.LINK_CLICK)
    if push_id is not None:
        qs = qs.filter(data__push_id=push_id)
    if content_id is not None:
        qs = qs.filter(data__content_id=content_id)
    return qs


def subscriber_engaged_at(*, subscriber_id: int) -> datetime | None:
    """When the subscriber first opened tracked content (first tracked-link click), or None."""
    return Interaction.objects.filter(subscriber_id=subscriber_id, kind__in=kinds.ENGAGING).aggregate(
        first=Min("created_at")
    )["first"]


# --- Push reports -------------------------------------------------------------------------------------------------

BASELINE_DAYS = 30


def pushes_list() -> QuerySet:
    from .models import Push

    return Push.objects.select_related("article", "template", "segment", "mass_tag")


def baseline_counts(*, before: datetime, days: int = BASELINE_DAYS) -> tuple[int, int]:
    """Unfollows in the `days` before `before`, and the followers during them (those following now, plus those who
    left in them: approximately, the average)."""
    from datetime import timedelta

    from accounts.models import FollowEvent, Subscriber

    start = before - timedelta(days=days)
    unfollows = FollowEvent.objects.filter(kind=FollowEvent.Kind.UNFOLLOW, at__gte=start, at__lt=before).count()
    return unfollows, Subscriber.objects.filter(is_following=True).count() + unfollows


def baseline_unfollow_rate(*, before: datetime, days: int = BASELINE_DAYS) -> float:
    """Unfollows per follower per day over the `days` before `before`: the account's normal churn."""
    unfollows, followers = baseline_counts(before=before, days=days)
    return unfollows / followers / days if followers else 0.0


@reads_reports
def push_report(*, push: Any) -> dict[str, Any]:
    """Recipients, skipped by reason, sent, delivered, failed, unknown, reached, clicks, click-through rate (clickers
    among the recipients reached), and unfollows within 24 h and 72 h of delivery among them against the account's
    baseline over the same windows.

    Read from the push's counters (content.services.deliveries.tallies), kept as the deliveries, clicks and unfollows
    are written: one query of a few rows, whatever the push's size. The baseline is taken when the push starts."""
    from .models import Delivery
    from .services.deliveries import tallies

    D = Delivery.Status
    t = tallies.push_tallies(push_ids=[push.pk])[push.pk]
    by_status = tallies.by_status(t)
    reached_n = t[tallies.REACHED]
    if tallies.BASELINE_FOLLOWERS in t or not push.started_at:
        followers = t[tallies.BASELINE_FOLLOWERS]
        daily = t[tallies.BASELINE_UNFOLLOWS] / followers / BASELINE_DAYS if followers else 0.0
    else:  # a push started before its counters were kept, not rebuilt yet
        daily = baseline_unfollow_rate(before=push.started_at)
    forwards = forward_figures(push_id=push.pk, forwarded_clicks=t[tallies.FORWARDED_CLICKS])

    def rate(n: int) -> float | None:
        return round(n / reached_n, 4) if reached_n else None

    return {
        "push": push.pk,
        "status": push.status,
        "recipients": t[tallies.RECIPIENTS],
        "queued": by_status["open"],
        "skipped": by_status[D.SKIPPED],
        "skipped_by_reason": tallies.skipped_by_reason(t),
        "sent": by_status[D.SENT] + by_status[D.DELIVERED] + by_status[D.FAILED],
        "delivered": by_status[D.DELIVERED],
        "failed": by_status[D.FAILED],
        "errors": by_status[D.ERROR],
        "unknown": by_status[D.UNKNOWN],
        "reached": reached_n,
        "clicks": t[tallies.CLICKS],
        "unique_clickers": t[tallies.CLICKERS],
        "reached_clickers": t[tallies.REACHED_CLICKERS],
        "click_through_rate": rate(t[tallies.REACHED_CLICKERS]),
        "unfollows_24h": t["unfollows_24h"],
        "unfollows_72h": t["unfollows_72h"],
        "unfollow_rate_24h": rate(t["unfollows_24h"]),
        "unfollow_rate_72h": rate(t["unfollows_72h"]),
        "baseline_unfollow_rate_24h": round(daily, 6),
        "baseline_unfollow_rate_72h": round(daily * 3, 6),
        "mass_totals": mass_totals(push_id=push.pk),
        **forwards,
    }


def forward_figures(*, push_id: int, forwarded_clicks: int | None = None) -> dict[str, int]:
    """What forwards of the push's links did (seen through web authorisation): clicks by followers it was forwarded
    to (the push's counter when given: counting them scans every click's JSON), opens by people who did not follow,
    and the follows those brought (their source push). Two or three queries."""
    from accounts.models import Subscriber

    if forwarded_clicks is None:
        forwarded_clicks = link_clicks(push_id=push_id).filter(data__has_key="shared_by").count()
    return {
        "forwarded_clicks": forwarded_clicks,
        "forwards_to_non_followers": Interaction.objects.filter(
            kind=Interaction.Kind.LINK_FORWARD, data__push_id=push_id
        ).count(),
        "follows_from_forwards": Subscriber.objects.filter(source_push_id=push_id).count(),
    }


def mass_totals(*, push_id: int) -> dict[str, int] | None:
    from django.db.models import Count, Sum

    from .models import MassBatch

    agg = MassBatch.objects.filter(push_id=push_id).aggregate(
        batches=Count("id"),
        total=Sum("total_count"),
        filtered=Sum("filter_count"),
        sent=Sum("sent_count"),
        errors=Sum("error_count"),
    )
    return agg if agg["batches"] else None


@reads_reports
def topic_report(*, topic_id: int | None = None) -> list[dict[str, Any]]:
    """Per content topic, the sums over the pushes of its articles (a push counts for each of its article's topics)."""
    from .models import Push, Topic

    out = []
    topics = Topic.objects.all() if topic_id is None else Topic.objects.filter(pk=topic_id)
    for topic in topics:
        pushes = Push.objects.filter(article__topics=topic, started_at__isnull=False).distinct()
        total = {"topic": topic.slug, "name": topic.name, "pushes": 0, "recipients": 0, "sent": 0, "clicks": 0,
                 "unique_clickers": 0, "unfollows_24h": 0, "unfollows_72h": 0}  # fmt: skip
        reached = reached_clickers = 0
        baseline = 0.0
        for push in pushes:
            r = push_report(push=push)
            total["pushes"] += 1
            for key in ("recipients", "sent", "clicks", "unique_clickers", "unfollows_24h", "unfollows_72h"):
                total[key] += r[key]
            # The rates over the recipients reached, as each push's (never above 1).
            reached += r["reached"]
            reached_clickers += r["reached_clickers"]
            baseline += r["baseline_unfollow_rate_24h"] * r["reached"]
        total["click_through_rate"] = round(reached_clickers / reached, 4) if reached else None
        total["unfollow_rate_24h"] = round(total["unfollows_24h"] / reached, 4) if reached else None
        total["baseline_unfollow_rate_24h"] = round(baseline / reached, 6) if reached else None
        out.append(total)
    return out


def pushes_in_flight(*, limit: int = 10) -> list[dict[str, Any]]:
    """Pushes being sent now, oldest start first, each with its progress (counts by delivery status)."""
    from .models import Push
    from .services.deliveries.progress import pushes_progress

    pushes = list(Push.objects.filter(status=Push.Status.SENDING).order_by("started_at", "pk")[:limit])
    progress = pushes_progress(pushes=pushes)
    return [{"id": p.pk, "name": p.name, **progress[p.pk]} for p in pushes]


def last_push_quality() -> dict[str, Any] | None:
    """The report of the last push that finished (sent or partially failed): delivery, clicks and unfollows."""
    from .models import Push

    push = (
        Push.objects.filter(status__in=(Push.Status.SENT, Push.Status.PARTIALLY_FAILED), finished_at__isnull=False)
        .order_by("-finished_at", "-pk")
        .first()
    )
    if push is None:
        return None
    report = push_report(push=push)
    reached = report["sent"] - report["failed"]
    attempted = report["recipients"] - report["skipped"]
    return {
        **report,
        "id": push.pk,
        "name": push.name,
        "finished_at": push.finished_at,
        "status_display": push.get_status_display(),
        "reached": reached,
        "delivery_rate": round(reached / attempted, 4) if attempted else None,
    }
