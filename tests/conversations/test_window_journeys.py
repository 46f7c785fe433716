"""The 48-hour window, operator replies through a real worker, journeys with time moved forward, dormant leads,
preferences respected by pushes, the menu and the lead score — asserted on what the fake WeChat server received."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Interaction, Subscriber, Tag
from accounts.tasks import interaction_process
from campaigns.models import Channel
from content.models import Article, Delivery, Topic
from conversations import scores, services
from conversations.journeys import entry, reports, steps
from conversations.models import (
    ChannelTopic,
    Conversation,
    Journey,
    JourneyEnrollment,
    JourneyStep,
    JourneyStepRun,
    Menu,
    Notification,
    OutboundMessage,
)
from tests.campaigns.factories import ChannelFactory, ConversionTypeFactory
from tests.content.factories import MessageTemplateFactory
from tests.content.push_factories import PushFactory, SegmentFactory, policy, send_now
from tests.conversations.factories import JourneyFactory, JourneyStepFactory, ScoreRuleFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import person_did, wait_for

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
NOW = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)


def _interaction(subscriber: Subscriber, kind: str, at: dt.datetime, *, fake=None, **kw) -> Interaction:
    """The interaction row; with `fake`, WeChat (the fake) knows of it too."""
    return person_did(subscriber, kind, at, fake=fake, **kw)


def _sub(openid: str = "oWin_000000000000000000001", **kw) -> Subscriber:
    return Subscriber.objects.create(openid=openid, is_following=True, subscribed_at=NOW - dt.timedelta(days=60), **kw)


def _send_all() -> None:
    for pk in OutboundMessage.objects.filter(status="queued").values_list("pk", flat=True):
        services.outbound_send(message_id=pk)


# --- the window -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_five_messages_within_48_hours_after_the_subscribers_last_message():
    sub = _sub()
    _interaction(sub, "text", NOW, content="hello")

    allowed, remaining, reason = services.cs_window(sub, NOW + dt.timedelta(hours=1))
    assert (allowed, remaining, reason) == (True, 5, "")
    for i in range(5):
        services.operator_reply(subscriber=sub, text=f"answer {i}", now=NOW + dt.timedelta(hours=1, minutes=i))
    allowed, remaining, reason = services.cs_window(sub, NOW + dt.timedelta(hours=2))
    assert not allowed and remaining == 0 and "limit" in reason
    with pytest.raises(services.OutsideWindow):
        services.operator_reply(subscriber=sub, text="one more", now=NOW + dt.timedelta(hours=2))

    _interaction(sub, "text", NOW + dt.timedelta(hours=3), content="again")  # a new message opens a new window
    assert services.cs_window(sub, NOW + dt.timedelta(hours=4)).remaining == 5
    later = services.cs_window(sub, NOW + dt.timedelta(hours=52))
    assert not later.allowed and "48 hours" in later.reason


@pytest.mark.django_db
def test_three_messages_within_a_minute_after_a_follow_scan_or_menu_click():
    sub = _sub()
    _interaction(sub, "subscribe", NOW)
    assert tuple(services.cs_window(sub, NOW + dt.timedelta(seconds=30))) == (True, 3, "")
    assert not services.cs_window(sub, NOW + dt.timedelta(minutes=2)).allowed


# --- operator replies through the worker -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_operator_replies_are_sent_by_the_worker_and_their_status_shows_in_the_thread(
    celery_worker, fake_with_token, staff_client
):
    sub = _sub("oInbox_0000000000000000001", nickname="小王")
    fake_with_token.add_users([{"openid": sub.openid, "subscribe": 1}])
    _interaction(sub, "text", timezone.now(), content="我的订单呢", fake=fake_with_token)
    conversation = Conversation.objects.create(subscriber=sub, unanswered=1, last_inbound_at=timezone.now())
    url = f"/admin/conversations/conversation/{conversation.pk}/thread/"

    page = staff_client.get(url).content.decode()
    assert "我的订单呢" in page and "小王" in page and "5 more customer-service messages" in page
    staff_client.post(url, {"text": "马上为您查询"})

    wait_for(lambda: fake_with_token.count(CUSTOM, errcode=0) == 1, timeout=60, message="no custom/send")
    (call,) = fake_with_token.calls(CUSTOM, errcode=0)
    assert call["body"] == {"touser": sub.openid, "msgtype": "text", "text": {"content": "马上为您查询"}}
    wait_for(lambda: OutboundMessage.objects.get().status == "sent", timeout=30)
    assert Conversation.objects.get().unanswered == 0

    # WeChat says the window is closed (a fault injected here; the window itself is tested elsewhere): the reply
    # fails with the reason.
    fake_with_token.configure(faults=[{"path": CUSTOM, "errcode": 45015, "times": 1}])
    staff_client.post(url, {"text": "还在吗"})
    wait_for(lambda: OutboundMessage.objects.filter(status="failed").exists(), timeout=60)
    page = staff_client.get(url).content.decode()
    assert "[45015]" in page


@pytest.mark.django_db
def test_a_reply_whose_answer_timed_out_is_unknown_and_never_sent_twice(fake_with_token, settings):
    settings.WECHAT_HTTP_TIMEOUT = 1.0
    sub = _sub("oLate_000000000000000000001")
    fake_with_token.add_users([{"openid": sub.openid, "subscribe": 1}])
    _interaction(sub, "text", timezone.now(), content="在吗", fake=fake_with_token)
    # WeChat takes the message and answers after our timeout: it may well have been delivered.
    fake_with_token.configure(faults=[{"path": CUSTOM, "timeout": 2.5, "mode": "answer", "times": 1}])
    message = services.operator_reply(subscriber=sub, text="在的")

    _send_all()

    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.UNKNOWN
    assert "not sent again" in message.reason
    services.outbound_resend_stuck(now=timezone.now() + dt.timedelta(hours=1))
    _send_all()
    assert fake_with_token.count(CUSTOM) == 1


@pytest.mark.django_db
def test_a_send_left_sending_by_a_dead_worker_becomes_unknown_while_a_lost_enqueue_is_sent(fake_with_token):
    sub = _sub("oDead_000000000000000000001")
    fake_with_token.add_users([{"openid": sub.openid, "subscribe": 1}])
    now = timezone.now()
    _interaction(sub, "text", now - dt.timedelta(minutes=6), content="在吗", fake=fake_with_token)  # window open
    payload = {"touser": sub.openid, "msgtype": "text", "text": {"content": "x"}}
    common = {"subscriber": sub, "kind": "custom", "source": "operator", "payload": payload, "created_at": now}
    stuck = OutboundMessage.objects.create(**common, status="sending", claimed_at=now - dt.timedelta(minutes=11))
    in_flight = OutboundMessage.objects.create(**common, status="sending", claimed_at=now - dt.timedelta(minutes=1))
    lost = OutboundMessage.objects.create(**{**common, "created_at": now - dt.timedelta(minutes=5)}, status="queued")

    services.outbound_resend_stuck(now=now)
    _send_all()

    statuses = dict(OutboundMessage.objects.values_list("pk", "status"))
    assert statuses == {stuck.pk: "unknown", in_flight.pk: "sending", lost.pk: "sent"}
    assert fake_with_token.count(CUSTOM, errcode=0) == 1


@pytest.mark.django_db
def test_outside_the_window_the_reply_box_offers_a_template_message(staff_client, fake_with_token):
    sub = _sub("oOld_000000000000000000001")
    fake_with_token.add_users([{"openid": sub.openid, "subscribe": 1}])
    _interaction(sub, "text", timezone.now() - dt.timedelta(days=3), content="old")
    conversation = Conversation.objects.create(subscriber=sub, unanswered=1)
    template = MessageTemplateFactory(wechat_template_id="TPL_FOLLOWUP", fields=[{"key": "first", "value": "你好"}])
    url = f"/admin/conversations/conversation/{conversation.pk}/thread/"

    page = staff_client.get(url).content.decode()
    assert "has not written to us in the last 48 hours" in page and 'name="template"' in page
    staff_client.post(url, {"text": "hello"})  # refused: nothing queued
    assert not OutboundMessage.objects.exists()
    staff_client.post(url, {"template": template.pk})
    _send_all()
    (call,) = fake_with_token.calls(TEMPLATE)
    assert call["body"]["template_id"] == "TPL_FOLLOWUP" and call["body"]["touser"] == sub.openid


# --- journeys -------------------------------------------------------------------------------------------------------


def _welcome_series(channel: Channel | None = None):
    offer = MessageTemplateFactory(wechat_template_id="TPL_OFFER", fields=[{"key": "first", "value": "专属优惠"}])
    digest = MessageTemplateFactory(
        wechat_template_id="TPL_DIGEST", fields=[{"key": "first", "value": "{{ article.title }}"}]
    )
    journey = JourneyFactory(name="Welcome", trigger="follow", channel=channel)
    JourneyStepFactory(journey=journey, position=0, action="message", text="欢迎 {nickname}!")
    JourneyStepFactory(journey=journey, position=1, wait=dt.timedelta(days=2), action="message",
                               content="topic_best", template=digest, text="")  # fmt: skip
    JourneyStepFactory(journey=journey, position=2, wait=dt.timedelta(days=5), action="message",
                               text="offer", template=offer, condition="not_converted")  # fmt: skip
    return journey


@pytest.mark.django_db
def test_a_welcome_series_runs_each_step_once_as_time_moves_forward(poster, fake_with_token, settings):
    settings.PUBLIC_BASE_URL = "https://crm.example.com"
    tech = Topic.objects.create(name="科技", slug="tech")
    best = Article.objects.create(title="AI 入门", status=Article.Status.PUBLISHED, published_at=timezone.now())
    best.topics.set([tech])
    channel = ChannelFactory(name="Tech fair", scene_str="techfair")
    ChannelTopic.objects.create(channel=channel, topic=tech)
    journey = _welcome_series(channel)
    openid = "oJourney_00000000000000001"
    fake_with_token.add_users([{"openid": openid, "subscribe": 1}])

    poster.post(build_message("subscribe", openid=openid, EventKey="qrscene_techfair"), "safe")
    # The profile fetch has stored the name (the welcome shows it, so it would wait for the fetch otherwise).
    Subscriber.objects.filter(openid=openid).update(nickname="Li", profile_fetched_at=timezone.now())
    for pk in Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True):
        interaction_process(pk)
        interaction_process(pk)  # twice: still one enrollment
    (enrollment,) = JourneyEnrollment.objects.all()
    assert enrollment.context["topic_id"] == tech.pk

    now = timezone.now()
    assert steps.journeys_advance(now=now) == 0  # the welcome (no wait) ran in the follow's own follow-up, once
    _send_all()
    (welcome,) = fake_with_token.calls(CUSTOM)  # inside the minute after the follow: customer-service
    assert welcome["body"] == {"touser": openid, "msgtype": "text", "text": {"content": "欢迎 Li!"}}

    assert steps.journeys_advance(now=now + dt.timedelta(days=1)) == 0  # still waiting
    assert steps.journeys_advance(now=now + dt.timedelta(days=2, minutes=1)) == 1
    _send_all()
    (digest,) = fake_with_token.calls(TEMPLATE)  # outside the window now: the template, about the channel's topic
    assert digest["body"]["template_id"] == "TPL_DIGEST"
    assert digest["body"]["data"] == {"first": {"value": "AI 入门"}}
    assert digest["body"]["url"].startswith("https://crm.example.com/r/")

    entry.journeys_on_conversion(Subscriber.objects.get(openid=openid).pk, now=now + dt.timedelta(days=3))
    Subscriber.objects.filter(openid=openid).update(stage="converted")
    assert steps.journeys_advance(now=now + dt.timedelta(days=8)) == 1
    _send_all()
    assert fake_with_token.count(TEMPLATE) == 1  # converted: the offer is skipped
    report = reports.journey_report(journey)
    assert (report["entered"], report["completed"], report["converted"]) == (1, 1, 1)
    assert [(s["done"], s["skipped"]) for s in report["steps"]] == [(1, 0), (1, 0), (0, 1)]


@pytest.mark.django_db
def test_a_subscriber_enters_a_journey_once_per_period():
    sub = _sub()
    journey = JourneyFactory(name="Weekly", trigger="stage", stage="engaged", period="week")
    JourneyStepFactory(journey=journey, action="score", score_delta=5)
    monday = dt.datetime(2026, 11, 23, 4, tzinfo=dt.UTC)
    assert entry.journeys_on_stage(sub.pk, "engaged", now=monday)
    assert not entry.journeys_on_stage(sub.pk, "engaged", now=monday + dt.timedelta(days=2))
    assert entry.journeys_on_stage(sub.pk, "engaged", now=monday + dt.timedelta(days=7))
    assert JourneyEnrollment.objects.count() == 2


@pytest.mark.django_db
def test_tag_score_and_notify_actions_with_conditions():
    sub = _sub()
    vip, lead = Tag.objects.create(name="vip"), Tag.objects.create(name="lead")
    journey = JourneyFactory(name="Hot lead", trigger="conversion")
    JourneyStepFactory(journey=journey, position=0, action="add_tag", tag=lead)
    JourneyStepFactory(journey=journey, position=1, action="score", score_delta=20)
    JourneyStepFactory(journey=journey, position=2, action="notify", text="call {nickname}",
                               condition="score_gte", condition_value="20")  # fmt: skip
    JourneyStepFactory(journey=journey, position=3, action="remove_tag", tag=lead, condition="has_tag",
                               condition_tag=vip)  # fmt: skip
    entry.journeys_on_conversion(sub.pk, now=NOW)
    steps.journeys_advance(now=NOW)

    sub.refresh_from_db()
    assert list(sub.tags.values_list("name", flat=True)) == ["lead"]  # not vip: the removal was skipped
    assert sub.score == 20
    assert Notification.objects.get().text == "call "
    assert list(JourneyStepRun.objects.values_list("outcome", flat=True)) == ["done", "done", "done", "skipped"]


@pytest.mark.django_db(transaction=True)
def test_the_worker_advances_a_due_step_stored_in_the_database(celery_worker, fake_with_token):
    """The wait is in the row (due_at), not in a countdown: a step due while no worker ran is sent once."""
    sub = _sub("oDue_000000000000000000001")
    fake_with_token.add_users([{"openid": sub.openid, "subscribe": 1}])
    template = MessageTemplateFactory(wechat_template_id="TPL_LATE", fields=[{"key": "first", "value": "hi"}])
    journey = JourneyFactory(name="Late", trigger="stage", stage="engaged")
    step = JourneyStepFactory(journey=journey, action="message", text="x", template=template)
    JourneyEnrollment.objects.create(journey=journey, subscriber=sub, period_key="ever", entered_at=NOW,
                                     due_at=timezone.now() - dt.timedelta(days=3))  # fmt: skip
    from conversations.tasks import journeys_advance_task

    journeys_advance_task.delay()
    journeys_advance_task.delay()
    try:
        wait_for(lambda: fake_with_token.count(TEMPLATE, errcode=0) == 1, timeout=60)
    except AssertionError:
        raise AssertionError(f"not sent: {fake_with_token.calls()} {list(OutboundMessage.objects.values())}") from None
    wait_for(lambda: OutboundMessage.objects.filter(status="sent").exists(), timeout=30)
    assert JourneyStepRun.objects.filter(step=step).count() == 1
    (call,) = fake_with_token.calls(TEMPLATE, errcode=0)  # (a call refused with 40001 may precede: a token refresh)
    assert call["body"] == {"touser": sub.openid, "template_id": "TPL_LATE", "data": {"first": {"value": "hi"}}}


@pytest.mark.django_db
def test_a_dormant_lead_gets_a_message_about_the_topic_they_last_read(fake_with_token, settings):
    settings.PUBLIC_BASE_URL = "https://crm.example.com"
    finance = Topic.objects.create(name="财经", slug="finance")
    article = Article.objects.create(title="理财", status=Article.Status.PUBLISHED)
    article.topics.set([finance])
    template = MessageTemplateFactory(
        wechat_template_id="TPL_DORMANT", fields=[{"key": "first", "value": "好久不见,{{ article.title }}"}]
    )
    journey = JourneyFactory(name="Dormant", trigger="dormant", dormant_days=30)
    JourneyStepFactory(journey=journey, action="message", content="topic_best", template=template,
                               text="最近{topic}有新内容")  # fmt: skip
    active, silent_never_active = _sub("oActive_0000000000000000001"), _sub("oSilent_0000000000000000001")
    fake_with_token.add_users([{"openid": active.openid, "subscribe": 1}])
    old = NOW - dt.timedelta(days=31)
    _interaction(active, "link_click", old, data={"content_id": article.pk})
    Subscriber.objects.filter(pk__in=[active.pk, silent_never_active.pk]).update(last_interaction_at=old)

    assert entry.journeys_enter_dormant(now=NOW) == 1
    assert entry.journeys_enter_dormant(now=NOW + dt.timedelta(hours=1)) == 0  # one quiet spell, one entry
    steps.journeys_advance(now=NOW)
    _send_all()
    (call,) = fake_with_token.calls(TEMPLATE)
    assert call["body"]["touser"] == active.openid
    assert call["body"]["data"] == {"first": {"value": "好久不见,理财"}}


# --- preferences respected by pushes, the menu, the score -------------------------------------------------------------


@pytest.mark.django_db
def test_a_push_after_td_skips_the_subscriber(poster, fake_with_token):
    policy()
    openid, other = "oTD_0000000000000000000001", "oOK_0000000000000000000001"
    fake_with_token.add_users([{"openid": openid, "subscribe": 1}, {"openid": other, "subscribe": 1}])
    poster.post(build_message("subscribe", openid=openid), "plain")
    poster.post(build_message("subscribe", openid=other), "plain")
    poster.post(build_message("text", openid=openid, Content="TD"), "safe")

    push = PushFactory(segment=SegmentFactory())
    send_now(push)

    assert [c["body"]["touser"] for c in fake_with_token.calls(TEMPLATE)] == [other]
    assert Delivery.objects.get(subscriber__openid=openid).reason == "paused"


@pytest.mark.django_db
def test_the_menu_is_validated_and_published_from_the_admin(staff_client, fake_with_token):
    too_long = {"name": "m", "buttons": '[{"type": "click", "name": "一二三四五六", "key": "K"}]'}
    response = staff_client.post("/admin/conversations/menu/add/", too_long)
    assert response.status_code == 200 and "longer than 16 bytes" in response.content.decode()

    buttons = [
        {"type": "click", "name": "今日推荐", "key": "TODAY"},
        {"name": "偏好", "sub_button": [{"type": "click", "name": "暂停推送", "key": "PREF:TD"},
                                      {"type": "view", "name": "官网", "url": "https://example.com/"}]},
        {"type": "miniprogram", "name": "小程序", "url": "https://example.com/", "appid": "wx1", "pagepath": "p/i"},
    ]  # fmt: skip
    menu = Menu.objects.create(name="main", buttons=buttons)
    response = staff_client.post(
        "/admin/conversations/menu/", {"action": "publish", "_selected_action": [menu.pk]}, follow=True
    )
    assert "The menu is published on WeChat." in response.content.decode()
    assert fake_with_token.menu()["button"] == buttons

    fake_with_token.configure(faults=[{"path": "/cgi-bin/menu/create", "errcode": 40018, "times": 1}])
    response = staff_client.post(
        "/admin/conversations/menu/", {"action": "publish", "_selected_action": [menu.pk]}, follow=True
    )
    assert "WeChat refused the menu: 40018" in response.content.decode()


@pytest.mark.django_db
def test_the_score_counts_points_per_interaction_and_decays(poster, staff_client, settings):
    settings.SCORE_HALF_LIFE_DAYS = 10
    ScoreRuleFactory(kind="text", points=4)
    ScoreRuleFactory(kind="click", points=2)
    openid = "oScore_000000000000000000001"
    poster.post(build_message("text", openid=openid, Content="hi"), "plain")
    poster.post(build_message("CLICK", openid=openid, EventKey="X"), "plain")
    for pk in Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True):
        interaction_process(pk)
        interaction_process(pk)
    sub = Subscriber.objects.get(openid=openid)
    assert sub.score == 6

    scores.scores_decay(now=timezone.now() + dt.timedelta(days=10))
    sub.refresh_from_db()
    assert sub.score == 3
    body = staff_client.get(f"/api/subscribers/{sub.pk}/score/").json()
    assert body["score"] == 3 and {e["reason"] for e in body["entries"]} == {"text", "click"}

    from content.services.segments import segment_subscribers

    assert list(segment_subscribers(rules={"rules": [{"type": "score", "gte": 3}]})) == [sub]
    assert not segment_subscribers(rules={"rules": [{"type": "score", "gte": 4}]}).exists()


@pytest.mark.django_db
def test_a_recorded_conversion_enters_conversion_journeys_and_counts_as_converted():
    from campaigns.conversions import ConversionInput, conversions_record

    sub = _sub("oBuyer_00000000000000000001")
    ConversionTypeFactory(slug="order", name="Order")
    welcome = JourneyFactory(name="Welcome", trigger="stage", stage="followed")
    JourneyStepFactory(journey=welcome, action="score", score_delta=1, wait=dt.timedelta(days=9))
    thanks = JourneyFactory(name="Thanks", trigger="conversion")
    JourneyStepFactory(journey=thanks, action="notify", text="new customer")
    entry.journeys_on_stage(sub.pk, "followed", now=NOW)

    item = ConversionInput(index=0, type="order", external_id="A1", occurred_at=NOW, openid=sub.openid)
    conversions_record(items=[item])
    conversions_record(items=[item])  # a repeated batch: nothing new

    assert JourneyEnrollment.objects.get(journey=welcome).converted_at is not None
    assert JourneyEnrollment.objects.filter(journey=thanks).count() == 1
    steps.journeys_advance(now=timezone.now())
    assert Notification.objects.get().text == "new customer"


@pytest.mark.django_db
def test_reaching_a_stage_through_interactions_enters_the_stage_journey(poster):
    journey = JourneyFactory(name="Engaged", trigger="stage", stage="followed")
    JourneyStepFactory(journey=journey, action="score", score_delta=7)
    openid = "oStage_00000000000000000001"
    poster.post(build_message("subscribe", openid=openid), "plain")
    poster.post(build_message("text", openid=openid, Content="hello"), "plain")
    for pk in Interaction.objects.filter(processed_at__isnull=True).values_list("pk", flat=True):
        interaction_process(pk)

    (enrollment,) = JourneyEnrollment.objects.all()  # once, though two interactions saw the stage
    assert enrollment.subscriber.openid == openid


@pytest.mark.django_db
def test_the_demo_examples_load_twice_without_duplicates_and_the_menu_is_valid():
    from django.core.management import call_command

    from conversations.menus import menu_validate

    call_command("conversations_seed_examples")
    call_command("conversations_seed_examples")

    welcome = Journey.objects.get(name="示例：欢迎系列")
    assert [(s.wait.days, s.action) for s in welcome.steps.order_by("position")] == [
        (0, "message"), (2, "message"), (5, "message")
    ]  # fmt: skip
    dormant = Journey.objects.get(name="示例：沉睡线索唤醒")
    assert dormant.dormant_days == 30 and dormant.steps.count() == 2
    for step in JourneyStep.objects.all():
        step.full_clean()
    menu_validate(Menu.objects.get().buttons)
