"""Journey steps run a batch at a time (conversations.journeys.steps): each enrollment's step once even when two
tasks are given the same batch, a paused person and quiet hours in the same batch each handled as alone, a
person's steps sent in their order, and the welcome of a burst of follows sent inside WeChat's minute — asserted on
the fake WeChat server's log and the journey's runs."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from content.models import SendPolicy
from conversations import policy, services
from conversations.journeys import steps
from conversations.models import JourneyEnrollment, JourneyStepRun, OutboundMessage
from tests.content.factories import SubscriberFactory
from tests.content.push_factories import policy as send_policy
from tests.conversations.factories import JourneyFactory, JourneyStepFactory
from tests.helpers import in_threads, person_did

CUSTOM = "/cgi-bin/message/custom/send"


def _send_all() -> None:
    for pk in OutboundMessage.objects.filter(status="queued").order_by("pk").values_list("pk", flat=True):
        services.outbound_send(message_id=pk)


def _enrolled(journey, people, *, at) -> list[int]:
    JourneyEnrollment.objects.bulk_create(
        [JourneyEnrollment(journey=journey, subscriber=p, period_key="ever", entered_at=at, due_at=at) for p in people]
    )
    return list(JourneyEnrollment.objects.filter(journey=journey).order_by("pk").values_list("pk", flat=True))


def _followers(fake, n: int, *, wrote_ago: dt.timedelta | None = None) -> list:
    """n followers who just followed (WeChat's minute is open) or, with `wrote_ago`, wrote to us that long ago."""
    now = timezone.now()
    people = [SubscriberFactory() for _ in range(n)]
    fake.add_users([{"openid": p.openid, "subscribe": 1} for p in people])
    for p in people:
        if wrote_ago is None:
            person_did(p, "subscribe", now - dt.timedelta(seconds=5), fake=fake)
        else:
            person_did(p, "text", now - wrote_ago, fake=fake, content="hi")
    return people


@pytest.mark.django_db(transaction=True)
def test_two_tasks_given_the_same_batch_send_each_welcome_once(fake_with_token):
    send_policy()
    people = _followers(fake_with_token, 30)
    welcome = JourneyFactory(trigger="follow")
    step = JourneyStepFactory(journey=welcome, action="message", text="欢迎关注")
    ids = _enrolled(welcome, people, at=timezone.now())
    results = in_threads(2, lambda _i: steps.steps_run(enrollment_ids=ids))
    assert sum(results) == 30  # split between the two tasks, or all in one: never both
    assert steps.steps_run(enrollment_ids=ids) == 0  # a third, later: nothing is due any more
    _send_all()

    sent = Counter(c["body"]["touser"] for c in fake_with_token.calls(CUSTOM, errcode=0))
    assert sent == Counter({p.openid: 1 for p in people})
    assert JourneyStepRun.objects.filter(step=step, outcome="done").count() == 30
    assert set(JourneyEnrollment.objects.values_list("status", flat=True)) == {"completed"}


@pytest.mark.django_db
def test_a_batch_with_a_paused_person_in_quiet_hours_defers_the_others_message(fake_with_token):
    local = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8)))
    send_policy(quiet_hours_enabled=True,
                quiet_start=(local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0),
                quiet_end=(local + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0))  # fmt: skip
    quiet_end = policy.quiet_hours_end(SendPolicy.current(), timezone.now())
    awake, paused = _followers(fake_with_token, 2, wrote_ago=dt.timedelta(minutes=10))
    paused.pushes_paused = True
    paused.save(update_fields=["pushes_paused"])
    journey = JourneyFactory(trigger="stage", stage="engaged")
    scored = JourneyStepFactory(journey=journey, position=0, score_delta=2)
    message = JourneyStepFactory(journey=journey, position=1, action="message", text="早上好")
    now = timezone.now()
    first, second = _enrolled(journey, [awake, paused], at=now)

    assert steps.journeys_advance(now=now) == 4  # both scored; the paused one skipped, the other deferred
    runs = {(r.enrollment_id, r.step_id): (r.outcome, r.detail) for r in JourneyStepRun.objects.all()}
    assert runs == {(first, scored.pk): ("done", "+2"), (second, scored.pk): ("done", "+2"),
                    (second, message.pk): ("skipped", "paused")}  # fmt: skip
    waiting = JourneyEnrollment.objects.get(pk=first)
    assert (waiting.status, waiting.next_position, waiting.due_at) == ("active", 1, quiet_end)
    assert JourneyEnrollment.objects.get(pk=second).status == "completed"
    assert not OutboundMessage.objects.exists()
    awake.refresh_from_db()
    assert awake.score == 2

    assert steps.journeys_advance(now=quiet_end + dt.timedelta(minutes=1)) == 1
    (queued,) = OutboundMessage.objects.all()
    assert (queued.subscriber_id, queued.text, queued.status) == (awake.pk, "早上好", "queued")
    assert JourneyStepRun.objects.get(enrollment_id=first, step=message).outcome == "done"
    assert JourneyEnrollment.objects.get(pk=first).status == "completed"


@pytest.mark.django_db
def test_a_persons_steps_without_waits_are_sent_in_their_order(fake_with_token):
    send_policy()
    people = _followers(fake_with_token, 3, wrote_ago=dt.timedelta(minutes=1))
    series = JourneyFactory(trigger="follow")
    for n, text in enumerate(["一", "二", "三"]):
        JourneyStepFactory(journey=series, position=n, action="message", text=text)
    other = JourneyFactory(trigger="stage", stage="followed")
    JourneyStepFactory(journey=other, action="message", text="另一个")
    now = timezone.now()
    _enrolled(series, people, at=now)
    _enrolled(other, people[:1], at=now)

    assert steps.journeys_advance(now=now) == 3 * 3 + 1
    _send_all()

    received: dict[str, list[str]] = {}
    for call in fake_with_token.calls(CUSTOM, errcode=0):
        received.setdefault(call["body"]["touser"], []).append(call["body"]["text"]["content"])
    first, *rest = people
    assert received[first.openid] == ["一", "二", "三", "另一个"]
    assert all(received[p.openid] == ["一", "二", "三"] for p in rest)


@pytest.mark.django_db
def test_a_batch_takes_the_same_queries_for_50_enrollments_as_for_5(fake_with_token, django_assert_max_num_queries):
    send_policy()
    journey = JourneyFactory(trigger="follow")
    JourneyStepFactory(journey=journey, action="message", text="欢迎")
    small, large = _followers(fake_with_token, 5), _followers(fake_with_token, 50)
    now = timezone.now()
    JourneyEnrollment.objects.bulk_create(
        [JourneyEnrollment(journey=journey, subscriber=p, period_key="ever", entered_at=now, due_at=now)
         for p in small + large]
    )  # fmt: skip
    ids = dict(JourneyEnrollment.objects.values_list("subscriber_id", "pk"))
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert steps.steps_run(enrollment_ids=[ids[p.pk] for p in small]) == 5
    with django_assert_max_num_queries(len(queries)):
        assert steps.steps_run(enrollment_ids=[ids[p.pk] for p in large]) == 50
    assert OutboundMessage.objects.filter(status="queued").count() == 55
