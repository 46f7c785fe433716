"""The funnel report on a small population built by hand, through the same services the events go through
(the population is described in tests/campaigns/funnel_population.py)."""

from datetime import datetime
from decimal import Decimal

import pytest

from accounts.models import Subscriber
from campaigns import attribution_reports, funnel
from campaigns.conversions import ConversionInput, conversions_record
from campaigns.models import Conversion
from tests.campaigns.funnel_population import T0, D, H, interaction, population_small

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def population():
    return population_small()


def report(window=30, **kwargs):
    q = funnel.funnel_query(
        start=datetime(2026, 3, 1).date(), end=datetime(2026, 3, 31).date(), window_days=window, **kwargs
    )
    return funnel.funnel_report(query=q)


def counts(steps):
    return [s["count"] for s in steps]


def groups(rep):
    return {g["label"]: counts(g["steps"]) for g in rep["groups"]}


def test_stages_are_kept_per_subscriber(population):
    by = {s.openid: s for s in Subscriber.objects.all()}
    assert by["o_a1"].stage == "converted"
    assert by["o_a1"].engaged_at == T0 + H and by["o_a1"].interactive_at == T0 + 2 * D
    assert by["o_a1"].converted_at == T0 + 3 * D and by["o_a1"].followed_at == T0
    assert by["o_a1"].engaged_content == population["x"] and by["o_a1"].engaged_push == population["p"]
    assert by["o_a2"].stage == "engaged" and by["o_a2"].interactive_at is None
    assert by["o_b1"].stage == "converted" and by["o_b1"].interactive_at == T0 + 8 * D + H
    assert by["o_b2"].stage == "converted" and by["o_b2"].interactive_at is None
    assert by["o_a3"].stage == "followed" and by["o_a3"].engaged_at is None


def test_report_exact_numbers(population):
    rep = report()
    steps = rep["steps"]
    assert counts(steps) == [6, 4, 2, 1]
    assert [s["conversion_from_previous"] for s in steps] == [1.0, 0.6667, 0.5, 0.5]
    assert [s["conversion_from_first"] for s in steps] == [1.0, 0.6667, 0.3333, 0.1667]
    assert [s["dropoff"] for s in steps] == [2, 2, 1, None]
    # engaged: everyone 1 h after the follow; interactive: a1 47 h, b1 24 h after engaging; converted: a1 1 day
    assert [s["median_seconds_from_previous"] for s in steps] == [None, 3600.0, (47 * 3600 + 86400) / 2, 86400.0]
    assert rep["groups"] == []


def test_conversion_outside_the_window_counts_with_a_wider_window(population):
    assert counts(report(window=60)["steps"]) == [6, 4, 2, 2]


@pytest.mark.parametrize(
    ("breakdown", "expected"),
    [
        ("channel", {"Poster A": [3, 2, 1, 1], "Poster B": [2, 2, 1, 0], "(none)": [1, 0, 0, 0]}),
        ("cohort_week", {"2026-03-02": [4, 2, 1, 1], "2026-03-09": [2, 2, 1, 0]}),
        ("campaign", {"Spring A": [3, 2, 1, 1], "Spring A+B": [5, 4, 2, 1]}),
        ("content", {"Article X": [2, 2, 1, 1], "Article Y": [1, 1, 0, 0], "(none)": [3, 1, 1, 0]}),
    ],
)
def test_report_breakdowns(population, breakdown, expected):
    rep = report(breakdown=breakdown)
    assert groups(rep) == expected
    assert counts(rep["steps"]) == [6, 4, 2, 1]


def test_report_filters(population):
    assert counts(report(channel_id=population["a"].pk)["steps"]) == [3, 2, 1, 1]
    assert counts(report(campaign_id=population["c2"].pk)["steps"]) == [5, 4, 2, 1]
    assert counts(report(tag="vip")["steps"]) == [2, 2, 2, 1]


@pytest.mark.parametrize(
    ("step", "openids"),
    [("followed", ["o_a3", "o_n1"]), ("engaged", ["o_a2", "o_b2"]), ("interactive", ["o_b1"])],
)
def test_dropoffs_list_who_reached_a_step_and_not_the_next(population, step, openids):
    q = funnel.funnel_query(start=datetime(2026, 3, 1).date(), end=datetime(2026, 3, 31).date(), window_days=30)
    assert list(funnel.funnel_dropoffs(query=q, step=step).values_list("openid", flat=True)) == openids


def test_attribution_first_touch_channel_and_last_touch_push(population):
    conv = {c.external_id: c for c in Conversion.objects.all()}
    assert conv["order-a1"].channel == population["a"] and conv["order-a1"].push == population["p"]
    assert conv["order-a1"].content == population["x"]
    assert conv["reg-b2"].push == population["p"] and conv["reg-b2"].channel == population["b"]
    assert conv["order-b1"].push is None  # a menu click is no push
    q = funnel.funnel_query(start=datetime(2026, 3, 1).date(), end=datetime(2026, 3, 31).date(), window_days=30)
    by_channel = {r["label"]: r for r in attribution_reports.attribution_report(query=q, by="channel")}
    assert (
        by_channel["Poster A"]["revenue"] == Decimal("100.00") and by_channel["Poster A"]["conversion_rate"] == 0.3333
    )
    assert by_channel["Poster B"]["conversions"] == 1 and by_channel["Poster B"]["conversion_rate"] == 0.5
    by_campaign = {r["label"]: r for r in attribution_reports.attribution_report(query=q, by="campaign")}
    assert by_campaign["Spring A+B"]["conversions"] == 2 and by_campaign["Spring A+B"]["revenue"] == Decimal("100")
    by_content = {r["label"]: r for r in attribution_reports.attribution_report(query=q, by="content")}
    assert by_content["Article X"]["conversions"] == 2 and by_content["Article X"]["base"] == 2


def test_campaign_summary(population):
    summary = attribution_reports.campaign_summary(campaign=population["c2"])
    assert summary["follows"] == 5
    assert summary["stages"] == {"followed": 1, "engaged": 1, "interactive": 0, "converted": 3}
    assert summary["conversions"] == 3 and summary["revenue"] == Decimal("150.00")


def test_stages_never_move_back(population):
    a1 = Subscriber.objects.get(openid="o_a1")
    interaction(a1, "link_click", T0 + 10 * D, push_id=None, content_id=population["y"].pk)
    conversions_record(items=[ConversionInput(0, "purchase", "late", T0 + 20 * D, openid="o_a1")])
    a1.refresh_from_db()
    assert a1.stage == "converted" and a1.engaged_at == T0 + H and a1.converted_at == T0 + 3 * D
    assert a1.engaged_content == population["x"]


def test_imported_followers_get_their_first_follow_from_the_backfill():
    from campaigns.tasks import stages_backfill

    at = T0 - 30 * D
    imported = Subscriber.objects.create(openid="o_imported", is_following=True, subscribed_at=at)
    assert stages_backfill() == 1
    imported.refresh_from_db()
    assert imported.followed_at == at
    assert stages_backfill() == 0


def test_groups_of_the_same_size_come_in_the_order_of_their_ids_as_numbers():
    """Ties are ordered by id as a number, whatever the ids' number of digits: a channel with id 98 comes before
    one with id 100 (as text, "100" sorted first, and the order of two equal groups changed with the ids a database
    happened to hand out, so SQLite and PostgreSQL could disagree)."""
    from campaigns.models import Channel

    Channel.objects.create(pk=100, name="Poster C", scene_str="poster-c")
    Channel.objects.create(pk=98, name="Poster A", scene_str="poster-a")
    query = funnel.FunnelQuery(start=T0.date(), end=T0.date(), window_days=30, breakdown="channel")
    row = (1, 0, 11, 7, 4, 1, None, None, None)
    grouped = [("100", *row[1:]), (None, *row[1:]), ("98", *row[1:]), ("99", 0, 12, 1, 0, 0, None, None, None)]
    report = funnel.report_from_rows(query, [(None, 1, 34, 9, 4, 1, None, None, None)], grouped)
    assert [g["key"] for g in report["groups"]] == ["99", "98", "100", None]
    assert [g["label"] for g in report["groups"]][1:3] == ["Poster A", "Poster C"]
