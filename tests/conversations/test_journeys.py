"""Journeys with time moved forward, dormant leads, conversions and stages entering journeys, a due step run by a
real worker — asserted on what the fake WeChat server received."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Interaction, Subscriber, Tag
from accounts.tasks import interaction_process
from campaigns.models import Channel
from content.models import Article, Topic
from conversations.journeys import entry, reports, steps
from conversations.models import (
    ChannelTopic,
    JourneyEnrollment,
    JourneyStepRun,
    Notification,
    OutboundMessage,
)
from tests.campaigns.factories import ChannelFactory, ConversionTypeFactory
from tests.content.factories import MessageTemplateFactory
from tests.conversations.factories import JourneyFactory, JourneyStepFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import wait_for

from .window_helpers import CUSTOM, NOW, TEMPLATE, _interaction, _send_all, _sub

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


@pytest.mark.django_db
def test_a_message_whose_follow_ups_have_not_run_yet_ends_the_dormant_spell():
    """The callback stores the message at once; last_interaction_at moves in its follow-ups a moment later. The
    dormant journeys' sweep in between does not take the person who has just written for a dormant one."""
    journey = JourneyFactory(name="Dormant", trigger="dormant", dormant_days=30)
    JourneyStepFactory(journey=journey, action="message", text="好久不见")
    wrote, silent = _sub("oWrote_00000000000000000001"), _sub("oQuiet_00000000000000000001")
    old = NOW - dt.timedelta(days=31)
    for sub in (wrote, silent):
        _interaction(sub, "text", old)
    Subscriber.objects.filter(pk__in=[wrote.pk, silent.pk]).update(last_interaction_at=old)
    # A message as the callback stores it: its follow-ups are pending.
    Interaction.objects.create(subscriber=wrote, kind="text", dedupe_key="msg:dormant-1", raw_xml="",
                               created_at=NOW - dt.timedelta(minutes=1), received_at=NOW - dt.timedelta(minutes=1),
                               processed_at=None)  # fmt: skip

    assert entry.journeys_enter_dormant(now=NOW) == 1
    assert list(JourneyEnrollment.objects.values_list("subscriber_id", flat=True)) == [silent.pk]


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
