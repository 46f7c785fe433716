"""The send policy end to end: people act through our real callback (the fake WeChat server is told of everything
they send, as WeChat knows it), a real Celery worker runs the follow-ups and the pushes, and the fake's call log is
the referee: it enforces WeChat's customer-service window itself and must show no message to anyone the policy
excludes."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from accounts.models import Interaction, Subscriber
from content.models import Delivery, MessageTemplate, Push
from content.services import link_track, pushes
from conversations import policy, services
from conversations.errors import OutsideWindow
from conversations.journeys import reports, steps
from conversations.models import AutoReplyRule, JourneyStepRun, OutboundMessage
from tests.content.factories import MessageTemplateFactory
from tests.content.push_factories import PushFactory, SegmentFactory
from tests.content.push_factories import policy as send_policy
from tests.conversations.factories import JourneyFactory, JourneyStepFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import wait_for, wechat_shared_state_clear

CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wechat(celery_worker, fake_wechat, poster, settings):
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    send_policy()  # quiet hours off: tests run at any hour
    return fake_wechat


def _processed() -> bool:
    return not Interaction.objects.filter(processed_at__isnull=True).exists()


def _touser(calls) -> list[str]:
    return sorted(c["body"]["touser"] for c in calls)


def test_a_location_report_a_view_and_a_web_click_do_not_reopen_the_window(wechat, poster, client):
    """Someone who last wrote three days ago: an automatic LOCATION report, a VIEW of a menu link and a click on a
    tracked link in a browser move `last_interaction_at`, but open no customer-service window. The product's window
    and the fake's (computed independently) both say closed; a customer-service push skips them with the reason and
    WeChat never hears of them."""
    stale, fresh = "oStaleWindow0000000000000001", "oFreshWindow0000000000000001"
    wechat.add_users([{"openid": stale, "subscribe": 1}, {"openid": fresh, "subscribe": 1}])
    now = int(time.time())
    poster.post(build_message("subscribe", openid=stale, create_time=now - 3 * 86400 - 60), "plain")
    poster.post(build_message("text", openid=stale, Content="你好", create_time=now - 3 * 86400), "plain")
    poster.post(build_message("subscribe", openid=fresh, create_time=now - 3660), "plain")
    poster.post(build_message("text", openid=fresh, Content="在吗", create_time=now - 3600), "plain")
    poster.post(build_message("LOCATION", openid=stale), "plain")
    poster.post(build_message("VIEW", openid=stale, EventKey="https://example.com/shop"), "plain")
    sub = Subscriber.objects.get(openid=stale)
    click = client.get(urlsplit(link_track("https://example.com/a", subscriber_id=sub.pk)).path,
                       HTTP_USER_AGENT="Mozilla/5.0 (Macintosh) Chrome/120")  # fmt: skip
    assert click.status_code == 302
    wait_for(_processed, timeout=60, message="the worker did not process the interactions")
    wait_for(lambda: Interaction.objects.filter(subscriber=sub, kind="link_click").exists(), timeout=30)
    sub.refresh_from_db()
    assert sub.last_interaction_at > timezone.now() - dt.timedelta(minutes=5)  # recent activity, yet:

    ours = policy.window(subscriber=sub)
    assert (ours.allowed, ours.code) == (False, "outside_window")
    assert wechat.window(stale)["errcode"] == 45015  # the fake, on its own, would refuse too
    assert wechat.window(fresh)["open"] and policy.window(subscriber=Subscriber.objects.get(openid=fresh)).allowed

    push = PushFactory(channel=Push.Channel.CUSTOM, template=None, text="新品 https://example.com/new",
                       segment=SegmentFactory())  # fmt: skip
    pushes.push_schedule(push=push, send_at=timezone.now())
    wait_for(lambda: Push.objects.get(pk=push.pk).status in ("sent", "partially_failed"), timeout=90,
             message="the push did not finish")  # fmt: skip
    reasons = dict(Delivery.objects.filter(push=push).values_list("subscriber__openid", "reason"))
    statuses = dict(Delivery.objects.filter(push=push).values_list("subscriber__openid", "status"))
    assert (statuses[stale], reasons[stale]) == ("skipped", "outside_window")
    assert statuses[fresh] in ("sent", "delivered")
    assert _touser(wechat.calls(CUSTOM, errcode=0)) == [fresh]
    assert stale not in _touser(wechat.calls(CUSTOM))  # nothing, not even a refused call, to the stale one

    with pytest.raises(OutsideWindow):  # the inbox reads the same window
        services.operator_reply(subscriber=sub, text="您好")
    assert not OutboundMessage.objects.filter(subscriber=sub).exists()


def test_td_stops_the_welcome_series_and_auto_reply_templates(wechat, poster):
    """After TD, the welcome series' next step and a keyword's template auto-reply are skipped with the reason; the
    person who did not reply TD gets both. The welcome message before TD went out."""
    service = MessageTemplateFactory(wechat_template_id="TPL_PRICE", fields=[{"key": "first", "value": "价目表"}])
    AutoReplyRule.objects.create(name="price", trigger="text_exact", pattern="价格", reply_kind="template",
                                 template=service)  # fmt: skip
    welcome = JourneyFactory(name="Welcome", trigger="follow")
    JourneyStepFactory(journey=welcome, position=0, action="message", text="欢迎!")
    second = JourneyStepFactory(journey=welcome, position=1, wait=dt.timedelta(days=2), action="message",
                                text="两天了", template=service)  # fmt: skip
    quitter, stayer = "oQuitsWithTD0000000000000001", "oStaysSubbed0000000000000001"
    wechat.add_users([{"openid": quitter, "subscribe": 1}, {"openid": stayer, "subscribe": 1}])
    for openid in (quitter, stayer):
        poster.post(build_message("subscribe", openid=openid), "plain")
    wait_for(lambda: wechat.count(CUSTOM, errcode=0) == 2, timeout=90, message="the welcome messages did not go")

    poster.post(build_message("text", openid=quitter, Content="TD"), "plain")
    assert Subscriber.objects.get(openid=quitter).pushes_paused
    for openid in (quitter, stayer):
        poster.post(build_message("text", openid=openid, Content="价格"), "plain")
    wait_for(lambda: OutboundMessage.objects.filter(source="auto_reply").count() == 2, timeout=60)
    wait_for(lambda: wechat.count(TEMPLATE, errcode=0) == 1, timeout=60, message="no template auto-reply")
    skipped = OutboundMessage.objects.get(source="auto_reply", subscriber__openid=quitter)
    assert (skipped.status, skipped.skip_reason) == ("skipped", "paused")

    # Two days later the series' second step runs (in this process: the step is due in the database).
    steps.journeys_advance(now=timezone.now() + dt.timedelta(days=2, minutes=1))
    runs = dict(JourneyStepRun.objects.filter(step=second).values_list("enrollment__subscriber__openid", "detail"))
    outcomes = dict(JourneyStepRun.objects.filter(step=second).values_list("enrollment__subscriber__openid",
                                                                           "outcome"))  # fmt: skip
    assert (outcomes[quitter], runs[quitter]) == ("skipped", "paused")
    assert outcomes[stayer] == "done"
    wait_for(lambda: wechat.count(TEMPLATE, errcode=0) == 2, timeout=60, message="the second step did not go")
    # (A call refused with 40001 may precede an accepted one: the worker's token refreshed.)
    assert _touser(wechat.calls(TEMPLATE, errcode=0)) == [stayer, stayer]
    assert quitter not in _touser(wechat.calls(TEMPLATE))
    assert sorted(_touser(wechat.calls(CUSTOM, errcode=0))) == sorted([quitter, stayer])  # the welcomes, before TD
    report = reports.journey_report(welcome)
    assert report["steps"][1]["skip_reasons"] == {"paused": 1}


def test_a_marketing_template_never_rides_an_auto_reply(wechat, poster):
    promo = MessageTemplateFactory(wechat_template_id="TPL_PROMO", purpose=MessageTemplate.Purpose.MARKETING)
    AutoReplyRule.objects.create(name="promo", trigger="text_exact", pattern="优惠", reply_kind="template",
                                 template=promo)  # fmt: skip
    openid = "oAsksForPromo000000000000001"
    wechat.add_users([{"openid": openid, "subscribe": 1}])
    poster.post(build_message("text", openid=openid, Content="优惠"), "plain")
    wait_for(lambda: OutboundMessage.objects.filter(source="auto_reply").exists(), timeout=60)
    message = OutboundMessage.objects.get(source="auto_reply")
    assert (message.status, message.skip_reason) == ("skipped", "template_marketing")
    wait_for(_processed, timeout=30)
    assert wechat.count(TEMPLATE) == 0
