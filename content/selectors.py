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


def baseline_unfollow_rate(*, before: datetime, days: int = BASELINE_DAYS) -> float:
    """Unfollows per follower per day over the `days` before `before`: the account's normal churn."""
    from datetime import timedelta

    from accounts.models import FollowEvent, Subscriber

    start = before - timedelta(days=days)
    unfollows = FollowEvent.objects.filter(kind=FollowEvent.Kind.UNFOLLOW, at__gte=start, at__lt=before).count()
    # Followers during the window: those following now, plus those who left in it (approximately, the average).
    followers = Subscriber.objects.filter(is_following=True).count() + unfollows
    return unfollows / followers / days if followers else 0.0


@reads_reports
def push_report(*, push: Any) -> dict[str, Any]:
    """Recipients, skipped by reason, sent, delivered, failed, unknown, reached, clicks, click-through rate (clickers
    among the recipients reached), and unfollows within 24 h and 72 h of delivery among them against the account's
    baseline over the same windows."""
    from datetime import timedelta

    from django.db.models import Count, Exists, OuterRef, Q

    from accounts.models import FollowEvent

    from .models import Delivery

    D = Delivery.Status
    rows = Delivery.objects.filter(push_id=push.pk)
    by_status = dict(rows.order_by().values_list("status").annotate(n=Count("id")))
    skipped = dict(rows.filter(status=D.SKIPPED).order_by().values_list("reason").annotate(n=Count("id")))
    reached = rows.filter(status__in=(D.SENT, D.DELIVERED), sent_at__isnull=False)

    def left_within(hours: int) -> Exists:
        return Exists(
            FollowEvent.objects.filter(
                subscriber_id=OuterRef("subscriber_id"),
                kind=FollowEvent.Kind.UNFOLLOW,
                at__gte=OuterRef("sent_at"),
                at__lt=OuterRef("sent_at") + timedelta(hours=hours),
            )
        )

    agg = reached.aggregate(
        reached=Count("id"),
        u24=Count("id", filter=Q(left_within(24))),
        u72=Count("id", filter=Q(left_within(72))),
    )
    clicks = link_clicks(push_id=push.pk)
    click_count = clicks.count()
    clickers = clicks.values("subscriber_id").distinct().count()
    # The rates count the same people on both sides: clickers among the recipients reached (a click on the test sent
    # to oneself, a forwarded link or a delivery whose outcome is unknown is a clicker, not a reached clicker).
    reached_clickers = (
        clicks.filter(subscriber_id__in=reached.values("subscriber_id")).values("subscriber_id").distinct().count()
    )
    reached_n = agg["reached"]
    daily = baseline_unfollow_rate(before=push.started_at) if push.started_at else 0.0
    forwards = forward_figures(push_id=push.pk)

    def rate(n: int) -> float | None:
        return round(n / reached_n, 4) if reached_n else None

    return {
        "push": push.pk,
        "status": push.status,
        "recipients": sum(by_status.values()),
        "queued": by_status.get(D.QUEUED, 0) + by_status.get(D.SENDING, 0),
        "skipped": by_status.get(D.SKIPPED, 0),
        "skipped_by_reason": skipped,
        "sent": by_status.get(D.SENT, 0) + by_status.get(D.DELIVERED, 0) + by_status.get(D.FAILED, 0),
        "delivered": by_status.get(D.DELIVERED, 0),
        "failed": by_status.get(D.FAILED, 0),
        "errors": by_status.get(D.ERROR, 0),
        "unknown": by_status.get(D.UNKNOWN, 0),
        "reached": reached_n,
        "clicks": click_count,
        "unique_clickers": clickers,
        "reached_clickers": reached_clickers,
        "click_through_rate": rate(reached_clickers),
        "unfollows_24h": agg["u24"],
        "unfollows_72h": agg["u72"],
        "unfollow_rate_24h": rate(agg["u24"]),
        "unfollow_rate_72h": rate(agg["u72"]),
        "baseline_unfollow_rate_24h": round(daily, 6),
        "baseline_unfollow_rate_72h": round(daily * 3, 6),
        "mass_totals": mass_totals(push_id=push.pk),
        **forwards,
    }


def forward_figures(*, push_id: int) -> dict[str, int]:
    """What forwards of the push's links did (seen through web authorisation): clicks by followers it was forwarded
    to, opens by people who did not follow, and the follows those brought (their source push). Three queries."""
    from accounts.models import Subscriber

    return {
        "forwarded_clicks": link_clicks(push_id=push_id).filter(data__has_key="shared_by").count(),
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
    from .services.deliveries import push_progress

    pushes = Push.objects.filter(status=Push.Status.SENDING).order_by("started_at", "pk")[:limit]
    return [{"id": p.pk, "name": p.name, **push_progress(push=p)} for p in pushes]


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
