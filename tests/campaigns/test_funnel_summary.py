"""The funnel summary (campaigns.summary): kept by the stage maintenance through the real, batched follow-ups, equal
to its rebuild from the stored columns, exactly once under retries, and the reports read from it equal the report
computed from the subscribers' columns (the computation before the summary), number by number."""

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import follow_ups
from accounts.models import Interaction, Subscriber
from campaigns import funnel
from campaigns.cells import cells_differences
from campaigns.conversions import ConversionInput, conversions_record
from campaigns.models import Campaign, Channel, FunnelStep
from campaigns.summary import summary_differences, summary_rebuild
from content import services as content_services
from content.models import Article, Push
from tests.campaigns.funnel_population import END, START, population_full
from tests.campaigns.funnel_reference import report_from_columns
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import clicks_drained
from wechat_crm.wechat.dispatch import follow_ups_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, tzinfo=SH)


def summary_rows() -> set[tuple]:
    return set(
        FunnelStep.objects.values_list("subscriber_id", "step", "day", "channel_key", "content_key", "reach_us",
                                       "delay_us")
    )  # fmt: skip


def process_pending(rng: random.Random) -> None:
    """The worker: pending interactions claimed by batches of random size, their follow-ups run once per batch."""
    while True:
        result = follow_ups.interactions_process(run=follow_ups_run, limit=rng.randint(1, 9))
        if not result.claimed:
            return


def queries() -> list[funnel.FunnelQuery]:
    channels = list(Channel.objects.values_list("pk", flat=True))
    campaigns = list(Campaign.objects.values_list("pk", flat=True))
    out = []
    for window in (1, 30, 60):
        for breakdown in (None, *funnel.BREAKDOWNS):
            out.append(funnel.funnel_query(start=START, end=END, window_days=window, breakdown=breakdown))
        for pk in channels:
            out.append(
                funnel.funnel_query(start=START, end=END, window_days=window, channel_id=pk, breakdown="content")
            )
        for pk in campaigns:
            out.append(
                funnel.funnel_query(start=START, end=END, window_days=window, campaign_id=pk, breakdown="cohort_week")
            )
        for tag in ("vip", "trial"):
            out.append(funnel.funnel_query(start=START, end=END, window_days=window, tag=tag, breakdown="channel"))
    out.append(funnel.funnel_query(start=date(2026, 3, 5), end=date(2026, 3, 12), window_days=30, breakdown="channel"))
    return out


def test_the_report_from_the_summary_equals_the_report_from_the_stage_columns():
    population_full()
    compared = 0
    for query in queries():
        assert funnel.funnel_report(query=query) == report_from_columns(query=query), query
        compared += 1
    assert compared >= 40
    # Not vacuous: every step has people and medians.
    overall = funnel.funnel_report(query=funnel.funnel_query(start=START, end=END, window_days=30))["steps"]
    assert overall[-1]["count"] > 10 and all(s["median_seconds_from_previous"] for s in overall[1:])


def test_random_follows_unfollows_refollows_messages_clicks_and_conversions_keep_the_summary_exact(poster, client):
    rng = random.Random(15)
    a = Channel.objects.create(name="Poster A", scene_str="poster-a")
    b = Channel.objects.create(name="Poster B", scene_str="poster-b")
    Campaign.objects.create(name="Spring").channels.set([a, b])
    articles = [Article.objects.create(title=f"Article {i}", slug=f"article-{i}") for i in range(2)]
    push = Push.objects.create(name="Push", article=articles[0])
    openids = [f"oSummary_{i:04d}" for i in range(8)]
    following: set[str] = set()
    at = T0
    orders = 0
    for _ in range(160):
        at += timedelta(seconds=rng.randint(60, 40_000))
        openid = rng.choice(openids)
        ts = int(at.timestamp())
        if openid not in following:
            fields = {"EventKey": f"qrscene_{rng.choice(['poster-a', 'poster-b'])}"} if rng.random() < 0.6 else {}
            poster.post(build_message("subscribe", openid=openid, create_time=ts, **fields))
            following.add(openid)
        else:
            action = rng.choices(["unfollow", "text", "click", "link", "convert"], [1, 6, 2, 2, 1])[0]
            if action == "unfollow":
                poster.post(build_message("unsubscribe", openid=openid, create_time=ts))
                following.discard(openid)
            elif action == "text":
                poster.post(build_message("text", openid=openid, create_time=ts, Content="hello"))
            elif action == "click":
                poster.post(build_message("CLICK", openid=openid, create_time=ts, EventKey="menu"))
            elif action == "link":
                sub = Subscriber.objects.get(openid=openid)
                url = content_services.link_track(
                    "https://shop.example.com/", subscriber_id=sub.pk, push_id=push.pk,
                    content_id=rng.choice(articles).pk,
                )  # fmt: skip
                assert client.get(urlsplit(url).path).status_code == 302
                clicks_drained()
            else:
                orders += 1
                item = ConversionInput(index=0, type="purchase", external_id=f"order-{orders}", occurred_at=at,
                                       openid=openid, value=Decimal("9.90"))  # fmt: skip
                conversions_record(items=[item])
        if rng.random() < 0.3:
            process_pending(rng)
    process_pending(rng)
    assert not Interaction.objects.filter(processed_at__isnull=True).exists()

    incremental = summary_rows()
    assert summary_differences() == [] and cells_differences() == []
    summary_rebuild()
    assert summary_rows() == incremental
    # Not vacuous: people at every step, some of them through a channel and a content.
    steps = {row[1] for row in incremental}
    assert steps == {0, 1, 2, 3}
    assert any(row[3] for row in incremental) and any(row[4] for row in incremental)
    # Every report equals the one from the stage columns.
    for query in queries():
        assert funnel.funnel_report(query=query) == report_from_columns(query=query), query


def test_a_retried_or_repeated_batch_counts_once(poster):
    for i, openid in enumerate(["oRetry_1", "oRetry_2", "oRetry_3"]):
        poster.post(build_message("subscribe", openid=openid, create_time=int((T0 + timedelta(hours=i)).timestamp())))
        for day in (1, 2, 3):
            ts = int((T0 + timedelta(days=day, hours=i)).timestamp())
            poster.post(build_message("CLICK", openid=openid, create_time=ts, EventKey="menu"))
            poster.post(build_message("text", openid=openid, create_time=ts + 60, Content="hi"))
    failures = []

    def fails_once(batch):
        follow_ups_run(batch)  # the summary is written, then the batch fails: all of it rolls back
        if not failures:
            failures.append(len(batch))
            raise RuntimeError("worker lost mid-batch")

    result = follow_ups.interactions_process(run=fails_once, limit=100)
    assert failures == [21] and result.done == 21  # retried one by one after the failure
    once = summary_rows()
    assert summary_differences() == [] and cells_differences() == []
    # The same batch run again (a task delivered twice, a sweeper racing the worker): nothing changes.
    follow_ups_run(list(Interaction.objects.select_related("subscriber").order_by("created_at", "id")))
    assert summary_rows() == once and cells_differences() == []
    counts = funnel.funnel_report(query=funnel.funnel_query(start=START, end=END, window_days=30))["steps"]
    assert [s["count"] for s in counts] == [3, 3, 3, 0]


def test_the_summary_command_rebuilds_and_checks():
    population_full()
    call_command("funnel_summary", "--check")
    FunnelStep.objects.filter(step=2).delete()
    with pytest.raises(CommandError):
        call_command("funnel_summary", "--check")
    call_command("funnel_summary", "--rebuild", "--check")
    assert summary_differences() == []


def test_a_deleted_channel_or_article_leaves_its_subscribers_under_none():
    objects = population_full()
    query = funnel.funnel_query(start=START, end=END, window_days=30, breakdown="content")
    objects["y"].delete()
    objects["a"].delete()
    assert summary_differences() == []
    assert funnel.funnel_report(query=query) == report_from_columns(query=query)
