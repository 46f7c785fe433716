"""The funnel report on a small population built by hand, through the same services the events go through.

a1  channel A  follows Mon 2 Mar 10:00, clicks push P's link to X (+1 h), texts (+1 d, +2 d): interactive at +2 d,
               purchases 100.00 at +3 d                                  -> converted within the window
a2  channel A  follows +1 h, clicks a link to Y (no push) +1 h later     -> engaged
a3  channel A  follows +1 d                                              -> followed
n1  no channel follows +2 d                                              -> followed
b1  channel B  follows +7 d, menu click +1 h, texts +1 d and +1 d 1 h: interactive; purchases 50.00 at +50 d
               (43 days after the follow: outside a 30-day window, inside a 60-day one)
b2  channel B  follows +8 d, clicks P's link to X (+1 h), registers at +9 d (converted, never interactive)
"""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from accounts import stages
from accounts.models import Interaction, Subscriber, Tag
from campaigns import funnel
from campaigns.conversions import ConversionInput, conversions_record
from campaigns.models import Campaign, Channel, Conversion
from content.models import Article, Push

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=SH)
H = timedelta(hours=1)
D = timedelta(days=1)
_seq = iter(range(1, 10**6))


def interaction(sub: Subscriber, kind: str, at: datetime, **data) -> None:
    row = Interaction.objects.create(
        subscriber=sub, kind=kind, dedupe_key=f"t:{next(_seq)}", raw_xml="", created_at=at, received_at=at, data=data
    )
    row = Interaction.objects.select_related("subscriber").get(pk=row.pk)
    if kind == "subscribe":
        stages.on_follow(row)
    else:
        stages.on_subscriber_interaction(row)


def follow(openid: str, channel: Channel | None, at: datetime) -> Subscriber:
    sub = Subscriber.objects.create(openid=openid, is_following=True, subscribed_at=at, source_channel=channel)
    interaction(sub, "subscribe", at)
    return sub


@pytest.fixture
def population():
    a = Channel.objects.create(name="Poster A", scene_str="poster-a")
    b = Channel.objects.create(name="Poster B", scene_str="poster-b")
    x = Article.objects.create(title="Article X", slug="article-x")
    y = Article.objects.create(title="Article Y", slug="article-y")
    p = Push.objects.create(name="Push P", article=x)
    a1 = follow("o_a1", a, T0)
    interaction(a1, "link_click", T0 + H, push_id=p.pk, content_id=x.pk, engaged=True)
    interaction(a1, "text", T0 + D)
    interaction(a1, "text", T0 + 2 * D)
    a2 = follow("o_a2", a, T0 + H)
    interaction(a2, "link_click", T0 + 2 * H, push_id=None, content_id=y.pk, engaged=True)
    follow("o_a3", a, T0 + D)
    follow("o_n1", None, T0 + 2 * D)
    b1 = follow("o_b1", b, T0 + 7 * D)
    interaction(b1, "click", T0 + 7 * D + H)
    interaction(b1, "text", T0 + 8 * D)
    interaction(b1, "text", T0 + 8 * D + H)
    b2 = follow("o_b2", b, T0 + 8 * D)
    interaction(b2, "link_click", T0 + 8 * D + H, push_id=p.pk, content_id=x.pk, engaged=True)
    result = conversions_record(
        items=[
            ConversionInput(0, "purchase", "order-a1", T0 + 3 * D, openid="o_a1", value=Decimal("100.00")),
            ConversionInput(1, "purchase", "order-b1", T0 + 50 * D, openid="o_b1", value=Decimal("50.00")),
            ConversionInput(2, "register", "reg-b2", T0 + 9 * D, openid="o_b2"),
        ]
    )
    assert result.created == 3 and not result.errors
    vip = Tag.objects.create(name="vip")
    a1.tags.add(vip)
    b1.tags.add(vip)
    c1 = Campaign.objects.create(name="Spring A")
    c1.channels.set([a])
    c2 = Campaign.objects.create(name="Spring A+B")
    c2.channels.set([a, b])
    c2.pushes.set([p])
    return {"a": a, "b": b, "x": x, "y": y, "p": p, "c1": c1, "c2": c2}


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
    by_channel = {r["label"]: r for r in funnel.attribution_report(query=q, by="channel")}
    assert (
        by_channel["Poster A"]["revenue"] == Decimal("100.00") and by_channel["Poster A"]["conversion_rate"] == 0.3333
    )
    assert by_channel["Poster B"]["conversions"] == 1 and by_channel["Poster B"]["conversion_rate"] == 0.5
    by_campaign = {r["label"]: r for r in funnel.attribution_report(query=q, by="campaign")}
    assert by_campaign["Spring A+B"]["conversions"] == 2 and by_campaign["Spring A+B"]["revenue"] == Decimal("100")
    by_content = {r["label"]: r for r in funnel.attribution_report(query=q, by="content")}
    assert by_content["Article X"]["conversions"] == 2 and by_content["Article X"]["base"] == 2


def test_campaign_summary(population):
    summary = funnel.campaign_summary(campaign=population["c2"])
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
