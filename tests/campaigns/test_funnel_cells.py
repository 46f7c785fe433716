"""The funnel summary's cells (campaigns.cells) and the report read from them (campaigns.funnel_cells): the same
numbers as the single pass over the summary's rows, group by group, on generated rows full of edge cases (even and
odd counts, equal delays, delays on the buckets' edges, reaches on the windows' edges, ranges cutting weeks and
months); the cells equal their recount after every kind of write to the summary, and a repeated refresh adds
nothing."""

import random
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Subscriber
from campaigns import funnel
from campaigns.cells import DAY_US, DELAY_EDGES, WINDOW_DAYS, cells_differences, cells_fold
from campaigns.funnel_cells import cells_answer
from campaigns.models import Campaign, Channel, FunnelCell, FunnelStep
from campaigns.summary import summary_refresh
from content.models import Article
from tests.campaigns.funnel_population import END, START, population_full

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

FIRST, LAST = date(2026, 1, 1), date(2026, 5, 31)
RANGES = [
    (FIRST, LAST),  # whole months (and weeks cut at both ends)
    (date(2026, 1, 15), date(2026, 4, 20)),  # months cut at both ends
    (date(2026, 2, 2), date(2026, 3, 1)),  # whole weeks, February whole, March's first day
    (date(2026, 3, 10), date(2026, 3, 10)),  # one day: no whole week or month
    (date(2026, 3, 4), date(2026, 3, 24)),  # inside a month
    (date(2025, 12, 1), date(2026, 6, 30)),  # wider than the data
]


def single_pass(query):
    """The report from the summary's rows (the path every filter and other window takes)."""
    return funnel.report_from_rows(query, *funnel.report_rows_summary(query))


def delays(rng: random.Random) -> int:
    edge = rng.choice(DELAY_EDGES[2:200])
    return rng.choice(
        [
            0,
            0,
            edge,
            edge - 1,  # both sides of a bucket's edge
            rng.choice([3_600_000_000, 86_400_000_000]),  # many equal delays
            rng.randint(1, 999_999),
            rng.randint(1, 40 * DAY_US),
            rng.randint(1, 40 * DAY_US),
        ]
    )


def generated(n: int = 700, seed: int = 7) -> dict:
    """Subscribers with summary rows written directly (the triggers count them as any write)."""
    rng = random.Random(seed)
    channels = [Channel.objects.create(name=f"Channel {i}", scene_str=f"cells-{i}") for i in range(3)]
    articles = [Article.objects.create(title=f"Article {i}", slug=f"cells-{i}") for i in range(2)]
    spring = Campaign.objects.create(name="Spring")
    spring.channels.set(channels[:2])
    Campaign.objects.create(name="Summer").channels.set(channels[2:])
    subscribers = Subscriber.objects.bulk_create(Subscriber(openid=f"o_cells_{i}") for i in range(n))
    rows = []
    for sub in subscribers:
        day = FIRST + timedelta(days=rng.randrange((LAST - FIRST).days + 1))
        channel = rng.choice([0, *(c.pk for c in channels)])
        content = rng.choice([0, *(a.pk for a in articles)])
        reach = 0
        for step in range(rng.choice([1, 2, 2, 3, 4, 4])):
            delay = 0 if step == 0 else delays(rng)
            if step and rng.random() < 0.1:  # reached exactly on a window's edge, or a microsecond after it
                delay = max(0, rng.choice(WINDOW_DAYS) * DAY_US - reach + rng.choice([0, 1]))
            reach += delay
            rows.append(FunnelStep(subscriber=sub, step=step, day=day, channel_key=channel, content_key=content,
                                   reach_us=reach, delay_us=delay))  # fmt: skip
    FunnelStep.objects.bulk_create(rows)
    return {"channels": channels, "articles": articles, "subscribers": subscribers, "spring": spring}


def assert_same_reports(windows=(1, 7, 30, 90)) -> int:
    compared = 0
    parities = set()
    for start, end in RANGES:
        for window in windows:
            for breakdown in (None, *funnel.BREAKDOWNS):
                query = funnel.funnel_query(start=start, end=end, window_days=window, breakdown=breakdown)
                assert cells_answer(query)
                fast = funnel.funnel_report(query=query)
                assert fast == single_pass(query), (query, fast)
                for group in [fast, *fast["groups"]]:
                    parities.update(s["count"] % 2 for s in group["steps"][1:] if s["count"])
                compared += 1
    assert parities == {0, 1}  # medians of even counts (the mean of two middles) and of odd ones
    return compared


def test_the_report_from_the_cells_equals_the_single_pass_number_by_number():
    objects = generated()
    assert assert_same_reports() == len(RANGES) * 4 * 5
    # A channel in two campaigns: each campaign adds up its channels.
    Campaign.objects.create(name="Both").channels.set(objects["channels"][1:])
    assert_same_reports(windows=(30,))
    # Not vacuous: medians everywhere, and groups of every kind.
    report = funnel.funnel_report(query=funnel.funnel_query(start=FIRST, end=LAST, window_days=30, breakdown="channel"))
    assert len(report["groups"]) == 4
    assert all(s["median_seconds_from_previous"] is not None for s in report["steps"][1:])


def test_every_write_to_the_summary_moves_the_cells_and_a_fold_keeps_their_sums():
    objects = generated(n=300, seed=8)
    assert cells_differences() == []
    subs = objects["subscribers"]
    # A subscriber's channel changes; another's content; a step reached later; rows deleted; a channel deleted.
    FunnelStep.objects.filter(subscriber=subs[0]).update(channel_key=objects["channels"][2].pk)
    FunnelStep.objects.filter(subscriber=subs[1]).update(content_key=objects["articles"][1].pk)
    top = FunnelStep.objects.filter(subscriber=subs[2]).order_by("-step").first()
    if top.step < 3:
        FunnelStep.objects.create(subscriber=subs[2], step=top.step + 1, day=top.day, channel_key=top.channel_key,
                                  content_key=top.content_key, reach_us=top.reach_us + 5, delay_us=5)  # fmt: skip
    FunnelStep.objects.filter(subscriber__in=subs[3:20]).delete()
    objects["channels"][0].delete()
    subs[25].delete()  # the cascade deletes its rows
    assert cells_differences() == []
    assert_same_reports(windows=(7, 30))
    before = sorted(FunnelCell.objects.values_list("kind", "period", "grp", "step", "wclass", "bucket", "n"))
    assert cells_fold() > 0
    assert not FunnelCell.objects.filter(folded=False).exists()
    assert cells_fold() == 0
    assert cells_differences() == []
    assert len(before) > FunnelCell.objects.count()
    assert_same_reports(windows=(30,))
    # Later writes add to the folded cells.
    FunnelStep.objects.filter(subscriber__in=subs[30:40]).update(day=date(2026, 2, 27))
    assert cells_differences() == []
    assert_same_reports(windows=(30,))


def test_a_repeated_refresh_adds_nothing_and_the_command_checks_the_cells():
    population_full()
    query = funnel.funnel_query(start=START, end=END, window_days=30, breakdown="content")
    report = funnel.funnel_report(query=query)
    rows = FunnelCell.objects.count()
    summary_refresh(subscriber_ids=Subscriber.objects.values_list("pk", flat=True))  # nothing changed
    assert FunnelCell.objects.count() == rows
    assert funnel.funnel_report(query=query) == report == single_pass(query)
    # A subscriber's engaging content set later: the refresh moves their rows, the cells follow exactly once.
    sub = Subscriber.objects.filter(engaged_at__isnull=False, engaged_content__isnull=True).first()
    Subscriber.objects.filter(pk=sub.pk).update(engaged_content=Article.objects.first())
    summary_refresh(subscriber_ids=[sub.pk])
    summary_refresh(subscriber_ids=[sub.pk])
    assert cells_differences() == []
    assert funnel.funnel_report(query=query) == single_pass(query) != report
    call_command("funnel_summary", "--check")
    FunnelCell.objects.create(kind=1, period=date(2026, 3, 1), grp=0, step=1, wclass=0, bucket=5, n=1)
    with pytest.raises(CommandError):
        call_command("funnel_summary", "--check")
    call_command("funnel_summary", "--rebuild", "--check")
    assert funnel.funnel_report(query=query) == single_pass(query)


def test_reports_the_cells_cannot_answer_take_the_single_pass():
    population_full()
    channel = Channel.objects.first()
    for query in (
        funnel.funnel_query(start=START, end=END, window_days=45, breakdown="channel"),  # a window of no class
        funnel.funnel_query(start=START, end=END, window_days=30, tag="vip"),
        funnel.funnel_query(start=START, end=END, window_days=30, channel_id=channel.pk, breakdown="content"),
    ):
        assert not cells_answer(query)
        assert funnel.funnel_report(query=query) == single_pass(query)
