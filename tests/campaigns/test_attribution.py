"""Attribution does not depend on timing: a conversion's first-touch channel and last-touch push and content are the
same whatever order the follow's follow-up, the clicks and the conversion are processed in, and conversion rates
count the same people on both sides (never above 100%)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Interaction, Subscriber
from accounts.tasks import interaction_process
from campaigns import attribution_reports, funnel
from campaigns.attribution import conversions_attribute, conversions_backfill
from campaigns.conversions import ConversionInput, conversions_record
from campaigns.models import Conversion
from campaigns.selectors import channel_welcome_cache_clear
from campaigns.services import channel_create
from content import services as content_services
from content.models import Article, Push
from tests.accounts.factories import SubscriberFactory
from tests.campaigns.factories import ChannelFactory, ConversionFactory, ConversionTypeFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import clicks_drained, wait_for

pytestmark = pytest.mark.usefixtures("english")


@pytest.fixture(autouse=True)
def _fresh_caches():
    channel_welcome_cache_clear()
    cache.clear()  # tracked-link click markers (ids restart with each test database)
    yield
    channel_welcome_cache_clear()


def _click(client, *, subscriber: Subscriber, push: Push | None, article: Article | None) -> None:
    """The subscriber opens a tracked link of the push (the redirect records the click)."""
    url = content_services.link_track(
        "https://shop.example.com/item", subscriber_id=subscriber.pk, push_id=push and push.pk,
        content_id=article and article.pk,
    )  # fmt: skip
    assert client.get("/r/" + url.rsplit("/r/", 1)[1]).status_code == 302
    clicks_drained()  # as the beat or the redirect's drain would


def _post_conversion(api, *, openid: str, external_id: str, value: str = "99.00", at: datetime | None = None):
    body = {
        "openid": openid,
        "type": "purchase",
        "external_id": external_id,
        "value": value,
        "occurred_at": (at or timezone.now()).isoformat(),
    }
    response = api.post("/api/conversions/", body, format="json")
    assert response.status_code == 201, response.content
    return response


def _attribution(api, by: str) -> dict:
    today = timezone.localdate()
    response = api.get(f"/api/funnel/attribution/?by={by}&from={today - timedelta(days=1)}&to={today}")
    assert response.status_code == 200, response.content
    rows = response.json()
    assert all(r["conversion_rate"] is None or 0 <= r["conversion_rate"] <= 1 for r in rows), rows
    assert all(r["converted"] <= r["base"] for r in rows), rows
    return {r["label"]: r for r in rows}


def _all_processed(worker) -> bool:
    return not Interaction.objects.filter(processed_at__isnull=True).exists()


# --- Through the callback and a real worker ------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["conversion_before_follow_up", "follow_up_before_conversion"])
def test_a_fast_purchase_keeps_its_qr_channel_and_last_touch_in_either_order(
    order, fake_with_token, celery_worker, poster, staff_api, client
):
    ConversionTypeFactory(slug="purchase", name="Purchase")
    channel = channel_create(name="Spring poster", scene_str="spring-fast", welcome_reply="hi")
    article = Article.objects.create(title="Spring menu", slug="spring-menu")
    push = Push.objects.create(name="Spring push", article=article)
    buyer, browser = fake_with_token.add_users(
        [{"openid": "oFastBuyer_000000000000000001", "qr_scene_str": "spring-fast"},
         {"openid": "oBrowser_00000000000000000001"}]
    )  # fmt: skip

    if order == "conversion_before_follow_up":
        celery_worker.pause()  # the follow's follow-up waits in the queue
    poster.post(build_message("subscribe", openid=buyer, EventKey="qrscene_spring-fast"), "safe")
    poster.post(build_message("subscribe", openid=browser), "safe")  # an organic follower who does not buy
    subscriber = Subscriber.objects.get(openid=buyer)
    if order == "follow_up_before_conversion":
        wait_for(lambda: _all_processed(celery_worker), message=celery_worker.log()[-3000:])
        subscriber.refresh_from_db()
        assert subscriber.source_channel == channel
    _click(client, subscriber=subscriber, push=push, article=article)
    _post_conversion(staff_api, openid=buyer, external_id=f"fast-{order}")
    if order == "conversion_before_follow_up":
        follow = Interaction.objects.get(subscriber=subscriber, kind="subscribe")
        assert follow.processed_at is None  # the conversion really came first
        assert Subscriber.objects.get(openid=buyer).source_channel is None
        celery_worker.consume()
    wait_for(lambda: _all_processed(celery_worker), message=f"follow-ups not run\n{celery_worker.log()[-3000:]}")

    conversion = Conversion.objects.get()
    assert (conversion.channel, conversion.push, conversion.content) == (channel, push, article)
    assert Subscriber.objects.get(openid=buyer).source_channel == channel
    by_channel = _attribution(staff_api, "channel")
    assert by_channel["Spring poster"] | {"key": None} == {
        "key": None,
        "label": "Spring poster",
        "conversions": 1,
        "subscribers": 1,
        "revenue": "99.00",
        "base": 1,
        "converted": 1,
        "conversion_rate": 1.0,
    }
    assert by_channel["(none)"]["conversions"] == 0 and by_channel["(none)"]["conversion_rate"] == 0.0
    by_content = _attribution(staff_api, "content")
    assert by_content["Spring menu"]["conversions"] == 1 and by_content["Spring menu"]["conversion_rate"] == 1.0


def test_a_conversion_posted_before_the_person_follows_gets_the_channel_of_the_follow(
    fake_with_token, celery_worker, poster, staff_api
):
    """The person was known before following (a shop hand-off, an earlier import): their purchase is stored with no
    channel, and the follow's follow-up fills it in."""
    ConversionTypeFactory(slug="purchase", name="Purchase")
    channel = channel_create(name="Counter poster", scene_str="counter")
    (openid,) = fake_with_token.add_users([{"openid": "oKnownFirst_0000000000000001", "qr_scene_str": "counter"}])
    Subscriber.objects.create(openid=openid, is_following=False)
    _post_conversion(staff_api, openid=openid, external_id="before-follow")
    assert Conversion.objects.get().channel is None

    poster.post(build_message("subscribe", openid=openid, EventKey="qrscene_counter"), "safe")
    wait_for(
        lambda: Conversion.objects.filter(channel=channel).exists(),
        message=f"the conversion did not get the follow's channel\n{celery_worker.log()[-3000:]}",
    )
    assert Subscriber.objects.get(openid=openid).source_channel == channel
    assert _attribution(staff_api, "channel")["Counter poster"]["conversion_rate"] == 1.0


# --- The follow-ups, the backfill and the reports ------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def _old_conversion(subscriber: Subscriber, external_id: str, at: datetime, value: str = "10.00") -> Conversion:
    """A conversion as stored before attribution was filled in later: no channel, no push."""
    return ConversionFactory(
        type=ConversionTypeFactory(slug="purchase", name="Purchase"), subscriber=subscriber, external_id=external_id,
        occurred_at=at, value=Decimal(value),
    )  # fmt: skip


def _link_click(subscriber: Subscriber, at: datetime, push: Push | None, article: Article | None) -> Interaction:
    return Interaction.objects.create(
        subscriber=subscriber, kind="link_click", dedupe_key=f"click:{subscriber.pk}:{at.timestamp()}", raw_xml="",
        created_at=at, received_at=at, data={"push_id": push and push.pk, "content_id": article and article.pk},
    )  # fmt: skip


@pytest.mark.django_db
def test_the_attribution_report_never_shows_more_converters_than_members():
    """The incident: three QR followers bought before their follow-ups ran (their conversions lost the channel), two
    organic followers did not buy, and "(none)" showed 3 converters of 2 followers: 150%. Now the rate counts the
    group's own members, and the backfill gives the conversions their channel."""
    poster = ChannelFactory(name="Poster")
    fast = [
        SubscriberFactory(openid=f"o_fast_{i}", followed_at=T0, source_channel=poster, converted_at=T0 + timedelta(1))
        for i in range(3)
    ]
    for i in range(2):
        SubscriberFactory(openid=f"o_organic_{i}", followed_at=T0)
    early = SubscriberFactory(openid="o_early", followed_at=T0 - timedelta(days=60), converted_at=T0)
    for i, subscriber in enumerate([*fast, early]):
        _old_conversion(subscriber, f"lost-{i}", T0 + timedelta(days=1))
    query = funnel.funnel_query(start=T0.date(), end=T0.date() + timedelta(days=10), window_days=30)

    rows = {r["label"]: r for r in attribution_reports.attribution_report(query=query, by="channel")}
    assert rows["(none)"]["conversions"] == 4  # credited to nobody until the backfill
    assert (rows["(none)"]["base"], rows["(none)"]["converted"], rows["(none)"]["conversion_rate"]) == (2, 0, 0.0)
    assert (rows["Poster"]["base"], rows["Poster"]["converted"], rows["Poster"]["conversion_rate"]) == (3, 3, 1.0)

    assert conversions_backfill().changed == 3
    rows = {r["label"]: r for r in attribution_reports.attribution_report(query=query, by="channel")}
    assert rows["Poster"]["conversions"] == 3 and rows["Poster"]["revenue"] == Decimal("30.00")
    assert rows["(none)"]["conversions"] == 1  # the early follower's, who is not a member of this period
    for by in ("channel", "content", "campaign"):
        for row in attribution_reports.attribution_report(query=query, by=by):
            assert row["converted"] <= row["base"] and (row["conversion_rate"] or 0) <= 1, (by, row)


@pytest.mark.django_db
def test_the_backfill_command_fixes_old_rows_once(capsys):
    channel = ChannelFactory(name="Poster")
    article = Article.objects.create(title="X", slug="x")
    push = Push.objects.create(name="P", article=article)
    subscriber = SubscriberFactory(openid="o_old", source_channel=channel, followed_at=T0)
    _link_click(subscriber, T0 + timedelta(hours=1), push, article)
    _link_click(subscriber, T0 + timedelta(days=5), push=None, article=article)  # no push: not a last touch
    before = _old_conversion(subscriber, "old-1", T0 + timedelta(days=2))
    too_early = _old_conversion(subscriber, "old-2", T0 - timedelta(hours=1))  # before any click
    organic = _old_conversion(SubscriberFactory(openid="o_organic"), "old-3", T0)

    call_command("attribution_backfill", "--batch-size", "2")
    assert "3 conversions examined, 2 changed" in capsys.readouterr().out
    for row in (before, too_early, organic):
        row.refresh_from_db()
    assert (before.channel, before.push, before.content) == (channel, push, article)
    assert (too_early.channel, too_early.push, too_early.content) == (channel, None, None)
    assert (organic.channel, organic.push) == (None, None)

    call_command("attribution_backfill")
    assert "0 changed" in capsys.readouterr().out


@pytest.mark.django_db
def test_the_follow_up_fills_the_channel_of_conversions_written_before_it(poster):
    """Without the worker: the conversion is recorded between the callback and the follow's follow-up."""
    channel = ChannelFactory(name="Poster", scene_str="poster-x")
    poster.post(build_message("subscribe", openid="o_between", EventKey="qrscene_poster-x"), "plain")
    subscriber = Subscriber.objects.get(openid="o_between")
    ConversionTypeFactory(slug="purchase", name="Purchase")
    conversions_record(items=[ConversionInput(0, "purchase", "between", timezone.now(), openid="o_between")])
    assert Conversion.objects.get().channel == channel  # the first follow's scene names the channel already
    Conversion.objects.update(channel=None)  # as stored before: no channel until the follow-up

    interaction_process(Interaction.objects.get(subscriber=subscriber, kind="subscribe").pk)

    assert Conversion.objects.get().channel == channel
    assert Subscriber.objects.get(pk=subscriber.pk).source_channel == channel


@pytest.mark.django_db
def test_a_forwarded_link_then_a_purchase_by_ref_then_a_follow_credit_the_forward_and_the_follow(poster, staff_api):
    """Someone who does not follow opens a forwarded link (web authorisation), buys in the shop (which posts the
    `ref` our link gave it), then follows through a QR code: the purchase keeps the forward's push and content as its
    last touch and gets the QR code's channel when the follow is processed."""
    from accounts.webauth import ref_make

    ConversionTypeFactory(slug="purchase", name="Purchase")
    channel = ChannelFactory(name="Shop poster", scene_str="shop-poster")
    article = Article.objects.create(title="Gift guide", slug="gift-guide")
    push = Push.objects.create(name="Gift push", article=article)
    friend = Subscriber.objects.create(openid="o_friend_of_a_follower", is_following=False)
    Interaction.objects.create(
        subscriber=friend, kind="link_forward", dedupe_key="forward:1", raw_xml="", created_at=timezone.now(),
        received_at=timezone.now(), processed_at=timezone.now(), data={"push_id": push.pk, "content_id": article.pk},
    )  # fmt: skip
    response = staff_api.post(
        "/api/conversions/",
        {"ref": ref_make(subscriber_id=friend.pk), "type": "purchase", "external_id": "gift-1",
         "occurred_at": timezone.now().isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    conversion = Conversion.objects.get()
    assert (conversion.channel, conversion.push, conversion.content) == (None, push, article)

    poster.post(build_message("subscribe", openid=friend.openid, EventKey="qrscene_shop-poster"), "plain")
    interaction_process(Interaction.objects.get(subscriber=friend, kind="subscribe").pk)

    conversion.refresh_from_db()
    assert (conversion.channel, conversion.push, conversion.content) == (channel, push, article)


@pytest.mark.django_db
def test_a_click_stored_after_a_later_conversion_becomes_its_last_touch():
    article = Article.objects.create(title="X", slug="x")
    first, second = Push.objects.create(name="First", article=article), Push.objects.create(name="Second")
    subscriber = SubscriberFactory(openid="o_late_click", followed_at=T0)
    _link_click(subscriber, T0, first, article)
    conversion = _old_conversion(subscriber, "late", T0 + timedelta(hours=2))
    conversions_attribute(subscriber_ids=[subscriber.pk])
    conversion.refresh_from_db()
    assert conversion.push == first

    late = _link_click(subscriber, T0 + timedelta(hours=1), second, None)  # recorded now, happened before
    Interaction.objects.filter(pk=late.pk).update(processed_at=None)
    interaction_process(late.pk)

    conversion.refresh_from_db()
    assert (conversion.push, conversion.content) == (second, None)


@pytest.mark.django_db
def test_the_follow_up_costs_one_query_when_nobody_in_the_batch_converted(django_assert_num_queries):
    subscribers = [SubscriberFactory(openid=f"o_q{i}").pk for i in range(50)]
    with django_assert_num_queries(1):
        assert conversions_attribute(subscriber_ids=subscribers) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("filters", [{}, {"tag": "vip"}, {"window_days": 60}])
def test_attribution_groups_are_the_funnels_groups(filters):
    """For the same query, each attribution group's members are the funnel's group (its followed count), and its
    converted people include the funnel's converted step (which also needs the steps before it)."""
    from dataclasses import replace

    from tests.campaigns.funnel_population import END, START, population_full

    population_full()
    query = funnel.funnel_query(start=START, end=END, **{"window_days": 30, **filters})
    for by in ("channel", "content", "campaign"):
        groups = {g["label"]: g["steps"] for g in funnel.funnel_report(query=replace(query, breakdown=by))["groups"]}
        rows = {r["label"]: r for r in attribution_reports.attribution_report(query=query, by=by) if r["base"]}
        assert {label: r["base"] for label, r in rows.items()} == {k: s[0]["count"] for k, s in groups.items()}, by
        for label, row in rows.items():
            assert groups[label][-1]["count"] <= row["converted"] <= row["base"], (by, label, row)
