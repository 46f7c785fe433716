"""Subscription notices (订阅通知) end to end: templates added from the fake WeChat's library, people's consent posted
by the fake to our real callback (popup and change events), a notice push sent by a real Celery worker, and the
fake's call log checked per openid: a notice reaches exactly the people who accepted it, once per acceptance."""

from __future__ import annotations

from collections import Counter

import pytest
from django.utils import timezone

from accounts.models import Interaction, Subscriber
from content.models import Delivery, NoticeConsent, NoticeConsentChange, Push, Segment
from content.services import notices, pushes
from tests.helpers import wait_for, wechat_shared_state_clear

from .push_factories import policy

BIZSEND = "/cgi-bin/message/subscribe/bizsend"
D = Delivery.Status
VALUES = {"thing1": "周年庆", "time2": "2026年12月1日 15:00"}


@pytest.fixture
def world(celery_worker, fake_wechat, live_server, settings):
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    policy(max_retry_delay_seconds=2)
    fake_wechat.configure(callback_url=live_server.url + "/wechat/callback/", callback_delay=0)
    now = timezone.now()
    people = {name: Subscriber.objects.create(openid=f"oNotice{name}{'0' * 18}"[:28], is_following=True,
                                              subscribed_at=now) for name in ("accepts", "also", "rejects",
                                                                               "withdraws", "silent")}  # fmt: skip
    fake_wechat.add_users([{"openid": s.openid, "subscribe": 1} for s in people.values()])
    template = notices.notice_template_add(tid="1002", kid_list=[1, 2], scene_desc="活动提醒")
    segment = Segment.objects.create(name="everyone", rules={})
    yield {"fake": fake_wechat, "people": people, "template": template, "segment": segment}
    fake_wechat.configure(callback_url="", job_finish_events=False)


def _consents_recorded(n: int) -> None:
    wait_for(lambda: NoticeConsentChange.objects.count() >= n, timeout=60, interval=0.3,
             message="the popup and change events did not become consents")  # fmt: skip


def _push(world, name: str) -> Push:
    push = pushes.push_create(
        name=name, channel=Push.Channel.NOTICE, notice_template=world["template"], notice_values=dict(VALUES),
        segment=world["segment"],
    )  # fmt: skip
    pushes.push_schedule(push=push, send_at=timezone.now())

    def done():
        push.refresh_from_db()
        return push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED)

    wait_for(done, timeout=120, interval=0.5, message="the notice push did not finish")
    return push


def test_a_notice_reaches_exactly_the_people_who_accepted_it_once_per_acceptance(world):
    fake, people, template = world["fake"], world["people"], world["template"]
    tid = template.template_id
    assert template.keys == ["thing1", "time2"] and template.kind == template.Kind.ONE_TIME

    fake.notices_decide(people["accepts"].openid, accept=[tid])
    fake.notices_decide(people["also"].openid, accept=[tid, "another_template"])
    fake.notices_decide(people["rejects"].openid, reject=[tid])
    fake.notices_decide(people["withdraws"].openid, accept=[tid])
    _consents_recorded(5)
    fake.notices_decide(people["withdraws"].openid, withdraw=[tid])
    _consents_recorded(6)

    assert Interaction.objects.filter(kind="subscribe_msg_popup_event").count() == 4
    assert Interaction.objects.filter(kind="subscribe_msg_change_event").count() == 1
    history = Counter(NoticeConsentChange.objects.filter(template_id=tid).values_list("decision", flat=True))
    assert history == {"accept": 3, "reject": 1, "withdraw": 1}
    consenting = {people["accepts"].pk, people["also"].pk}
    assert notices.notice_consented_ids(subscriber_ids=[s.pk for s in people.values()], template=template) == (
        consenting
    )

    push = _push(world, "Anniversary")

    calls = fake.calls(BIZSEND)
    ok = Counter(c["body"]["touser"] for c in calls if c["errcode"] == 0)
    assert ok == {people["accepts"].openid: 1, people["also"].openid: 1}
    assert {c["body"]["touser"] for c in calls} == set(ok)  # nobody else was ever called
    assert calls[0]["body"]["data"] == {key: {"value": value} for key, value in VALUES.items()}
    rows = Delivery.objects.filter(push=push)
    skipped = dict(rows.filter(status=D.SKIPPED).values_list("subscriber_id", "reason"))
    assert skipped == {people[n].pk: "no_consent" for n in ("rejects", "withdraws", "silent")}
    # WeChat's subscribe_msg_sent_event reaches our callback: each notice becomes delivered.
    wait_for(lambda: rows.filter(status=D.DELIVERED).count() == 2, timeout=60, interval=0.3,
             message="the sent events did not mark the deliveries")  # fmt: skip
    assert Interaction.objects.filter(kind="subscribe_msg_sent_event").count() == 2

    # A one-time acceptance is used: the next notice reaches nobody until they accept again.
    assert not NoticeConsent.objects.filter(template_id=tid, credits__gt=0).exists()
    second = _push(world, "Reminder")
    # Counted from WeChat's accepted calls, per openid: a call WeChat refused sent nothing (a refused token is
    # refreshed once and the call retried, by design), so only accepted calls tell who got a notice.
    calls = fake.calls(BIZSEND)
    assert Counter(c["body"]["touser"] for c in calls if c["errcode"] == 0) == ok
    assert {c["body"]["touser"] for c in calls} == set(ok)
    assert set(Delivery.objects.filter(push=second).values_list("reason", flat=True)) == {"no_consent"}

    fake.notices_decide(people["also"].openid, accept=[tid])
    _consents_recorded(7)
    _push(world, "Again")
    ok = Counter(c["body"]["touser"] for c in fake.calls(BIZSEND) if c["errcode"] == 0)
    assert ok == {people["accepts"].openid: 1, people["also"].openid: 2}


def test_a_notice_wechat_reports_as_not_delivered_is_recorded_as_failed(world):
    fake, people, template = world["fake"], world["people"], world["template"]
    fake.configure(notice_failure_rates={"failed:user block": 1.0})
    fake.notices_decide(people["accepts"].openid, accept=[template.template_id])
    _consents_recorded(1)

    push = _push(world, "Blocked")

    row = Delivery.objects.get(push=push, subscriber=people["accepts"])
    wait_for(lambda: Delivery.objects.filter(pk=row.pk, status=D.FAILED).exists(), timeout=60, interval=0.3)
    row.refresh_from_db()
    assert (row.status, row.reason) == (D.FAILED, "user_block") and row.msgid is not None


def test_a_journey_message_step_sends_the_notice_only_to_whoever_accepted_it(world):
    """Outside the window (a popup is no message: it opens none), the step's first channel that applies is the
    subscription notice the person accepted; for anyone else, with no template to fall back on, the step skips
    with each channel's reason. Sent by the worker, seen in the fake's log per openid."""
    from conversations.models import Journey, JourneyEnrollment, JourneyStep, JourneyStepRun, OutboundMessage
    from conversations.tasks import journeys_advance_task

    fake, people, template = world["fake"], world["people"], world["template"]
    fake.notices_decide(people["accepts"].openid, accept=[template.template_id])
    _consents_recorded(1)
    journey = Journey.objects.create(name="Anniversary", trigger="stage", stage="engaged")
    step = JourneyStep(journey=journey, action="message", text="周年庆", notice_template=template,
                       notice_values={"thing1": "周年庆", "time2": "x"})  # fmt: skip
    with pytest.raises(Exception, match="time2"):
        step.full_clean()
    step.notice_values = dict(VALUES)
    step.full_clean()
    step.save()
    for name in ("accepts", "silent"):
        JourneyEnrollment.objects.create(journey=journey, subscriber=people[name], period_key="ever",
                                         entered_at=timezone.now(), due_at=timezone.now())  # fmt: skip

    journeys_advance_task.delay()
    wait_for(lambda: OutboundMessage.objects.filter(status="sent").exists(), timeout=60, interval=0.3,
             message="the journey's notice was not sent")  # fmt: skip
    calls = fake.calls(BIZSEND)  # (a call refused with 40001 may precede: the worker's token refresh)
    assert [c["body"]["touser"] for c in calls if c["errcode"] == 0] == [people["accepts"].openid]
    assert {c["body"]["touser"] for c in calls} == {people["accepts"].openid}
    assert fake.count("/cgi-bin/message/custom/send") == fake.count("/cgi-bin/message/template/send") == 0
    runs = dict(JourneyStepRun.objects.filter(step=step).values_list("enrollment__subscriber_id", "detail"))
    assert runs[people["accepts"].pk] == "notice"
    assert "notice=no_consent" in runs[people["silent"].pk]
    assert not NoticeConsent.objects.get(subscriber=people["accepts"]).credits  # the acceptance is used
