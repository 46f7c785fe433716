"""The 48-hour window, operator replies through a real worker, preferences respected by pushes, the menu and the
lead score — asserted on what the fake WeChat server received. Journeys: test_journeys.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Interaction, Subscriber
from accounts.tasks import interaction_process
from content.models import Delivery
from conversations import scores, services
from conversations.models import (
    Conversation,
    Journey,
    JourneyStep,
    Menu,
    OutboundMessage,
)
from tests.content.factories import MessageTemplateFactory
from tests.content.push_factories import PushFactory, SegmentFactory, policy, send_now
from tests.conversations.factories import ScoreRuleFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import wait_for

from .window_helpers import CUSTOM, NOW, TEMPLATE, _interaction, _send_all, _sub

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
