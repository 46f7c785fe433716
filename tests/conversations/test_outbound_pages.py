"""Outbound messages (journey messages, auto-replies, operator replies) sent a page at a time (conversations.outbound):
each exactly once, the send policy decided for the page, one WeChat refusal not stopping the others, WeChat's 48-hour
window and its five messages — asserted on what the fake WeChat server received."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import Subscriber
from conversations import outbound, services
from conversations.models import OutboundMessage
from tests.content.factories import SubscriberFactory
from tests.content.push_factories import policy as send_policy
from tests.helpers import in_threads, person_did

CUSTOM = "/cgi-bin/message/custom/send"
JOURNEY, OPERATOR = OutboundMessage.Source.JOURNEY, OutboundMessage.Source.OPERATOR


def _people(fake, n: int, *, wrote: dt.timedelta = dt.timedelta(hours=1), **fields) -> list[Subscriber]:
    """Followers who wrote to the account `wrote` ago (WeChat, the fake, knows it too)."""
    people = [SubscriberFactory(**fields) for _ in range(n)]
    fake.add_users([{"openid": p.openid, "subscribe": 1} for p in people])
    for person in people:
        person_did(person, "text", timezone.now() - wrote, fake=fake, content="你好")
    return people


def _queue(person: Subscriber, text: str, source: str = JOURNEY) -> OutboundMessage:
    return services.custom_send(subscriber=person, payload=services.custom_text_payload(person, text), text=text,
                                source=source, dedupe_key=f"t:{person.pk}:{text}:{source}")  # fmt: skip


def _received(fake) -> list[tuple[str, str]]:
    return [(c["body"]["touser"], c["body"]["text"]["content"]) for c in fake.calls(CUSTOM, errcode=0)]


@pytest.fixture
def quiet_off(db):
    send_policy()


def test_a_page_sends_each_queued_message_once_and_a_second_page_finds_nothing(fake_with_token, quiet_off):
    people = _people(fake_with_token, 12)
    messages = [_queue(p, f"欢迎 {p.pk}") for p in people]

    first = outbound.outbound_send_page(threads=4)
    second = outbound.outbound_send_page(threads=4)

    assert first.counts == {"sent": 12} and second.counts == {}
    assert sorted(_received(fake_with_token)) == sorted((p.openid, f"欢迎 {p.pk}") for p in people)
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert all(m.pk in first.statuses for m in messages)
    assert services.outbound_send(message_id=messages[0].pk).status == ""  # sent already: nobody claims it again


def test_a_message_another_worker_claimed_is_not_sent_by_the_page(fake_with_token, quiet_off):
    one, two = _people(fake_with_token, 2)
    claimed = _queue(one, "a")
    _queue(two, "b")
    OutboundMessage.objects.filter(pk=claimed.pk).update(status="sending", claimed_at=timezone.now())

    outbound.outbound_send_page()

    assert _received(fake_with_token) == [(two.openid, "b")]
    assert OutboundMessage.objects.get(pk=claimed.pk).status == "sending"


@pytest.mark.django_db(transaction=True)
def test_two_pages_running_at_once_send_every_message_exactly_once(fake_with_token):
    send_policy()
    people = _people(fake_with_token, 40)
    for person in people:
        _queue(person, "hello")
    results = in_threads(3, lambda _i: outbound.outbound_send_page(threads=2), timeout=60)

    calls = [c["body"]["touser"] for c in fake_with_token.calls(CUSTOM)]
    assert sorted(calls) == sorted(p.openid for p in people)  # one call each, none twice
    assert sum(sum(r.counts.values()) for r in results) == 40
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}


def test_the_policy_keeps_back_a_paused_persons_journey_message_and_sends_the_rest(fake_with_token, quiet_off):
    paused, *others = _people(fake_with_token, 3)
    Subscriber.objects.filter(pk=paused.pk).update(pushes_paused=True)
    for person in (paused, *others):
        _queue(person, "欢迎")
    operator = _queue(paused, "人工回复", source=OPERATOR)  # a reply answers the person: their pause does not apply

    page = outbound.outbound_send_page()

    assert page.counts == {"sent": 3, "skipped": 1}
    skipped = OutboundMessage.objects.get(subscriber=paused, source=JOURNEY)
    assert (skipped.status, skipped.skip_reason) == ("skipped", "paused")
    assert OutboundMessage.objects.get(pk=operator.pk).status == "sent"
    assert sorted(_received(fake_with_token)) == sorted(
        [(paused.openid, "人工回复")] + [(p.openid, "欢迎") for p in others]
    )


def test_quiet_hours_defer_the_pages_journey_messages_while_an_operator_reply_goes(fake_with_token, db):
    send_policy()
    journey_person, replied = _people(fake_with_token, 2)
    local = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8)))
    send_policy(quiet_hours_enabled=True, quiet_start=(local - dt.timedelta(hours=1)).time().replace(second=0),
                quiet_end=(local + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0))  # fmt: skip
    deferred = _queue(journey_person, "欢迎")
    _queue(replied, "您好", source=OPERATOR)

    page = outbound.outbound_send_page()

    deferred.refresh_from_db()
    assert (deferred.status, deferred.skip_reason) == ("queued", "quiet_hours")
    assert deferred.not_before > timezone.now() and page.defer_until == deferred.not_before
    assert _received(fake_with_token) == [(replied.openid, "您好")]
    assert outbound.outbound_send_page().counts == {}  # not due before the quiet hours end


def test_a_wechat_refusal_for_one_message_does_not_stop_the_others(fake_with_token, quiet_off):
    people = _people(fake_with_token, 5)
    gone = people[2]
    fake_with_token.configure(faults=[{"path": CUSTOM, "errcode": 43004, "touser": gone.openid}])
    for person in people:
        _queue(person, "欢迎")

    page = outbound.outbound_send_page(threads=3)

    assert page.counts == {"sent": 4, "failed": 1}
    failed = OutboundMessage.objects.get(subscriber=gone)
    assert (failed.status, failed.errcode) == ("failed", 43004)
    assert not Subscriber.objects.get(pk=gone.pk).is_following
    assert sorted(_received(fake_with_token)) == sorted((p.openid, "欢迎") for p in people if p != gone)


def test_the_window_holds_in_a_page_past_48_hours_and_past_five_messages(fake_with_token, quiet_off):
    """WeChat (the fake enforces it too) allows 5 customer-service messages within 48 h of the person's message: the
    page sends the first five of one person in order and keeps back the sixth, and nothing to a person who wrote 49 h
    ago; no call is refused."""
    (talker,) = _people(fake_with_token, 1)
    (silent,) = _people(fake_with_token, 1, wrote=dt.timedelta(hours=49))
    for n in range(1, 7):
        _queue(talker, f"第{n}条", source=OPERATOR)
    _queue(silent, "欢迎")

    page = outbound.outbound_send_page()

    assert page.counts == {"sent": 5, "skipped": 2}
    assert _received(fake_with_token) == [(talker.openid, f"第{n}条") for n in range(1, 6)]
    assert fake_with_token.count(CUSTOM) == 5  # nothing refused by WeChat
    reasons = dict(OutboundMessage.objects.filter(status="skipped").values_list("text", "skip_reason"))
    assert reasons == {"第6条": "window_limit", "欢迎": "outside_window"}


def test_a_page_asks_the_policy_in_the_same_number_of_queries_for_5_or_30_people(
    fake_with_token, quiet_off, django_assert_max_num_queries
):
    for n in (5, 30):
        for person in _people(fake_with_token, n):
            _queue(person, f"欢迎 {n}")
        with django_assert_max_num_queries(14):
            assert outbound.outbound_send_page(threads=4).counts == {"sent": n}


def test_one_page_task_is_enqueued_for_the_messages_a_transaction_queued(
    fake_with_token, quiet_off, django_capture_on_commit_callbacks
):
    first, second, third = _people(fake_with_token, 3)
    with django_capture_on_commit_callbacks() as hooks:
        _queue(first, "a")
        try:
            with transaction.atomic():  # a step that fails after queuing its message: both roll back
                _queue(second, "b")
                raise RuntimeError
        except RuntimeError:
            pass
        _queue(third, "c")
    assert len(hooks) == 1


def test_a_message_queued_after_a_rolled_back_one_still_gets_its_page_task(
    fake_with_token, quiet_off, django_capture_on_commit_callbacks
):
    first, second = _people(fake_with_token, 2)
    with django_capture_on_commit_callbacks() as hooks:
        with transaction.atomic():
            _queue(second, "d")  # the only message so far, in a savepoint that is then rolled back with its hook
            transaction.set_rollback(True)
        _queue(first, "e")
    assert len(hooks) == 1
    assert OutboundMessage.objects.get().text == "e"
