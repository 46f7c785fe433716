"""The push state machine and the exactly-once claim of due pushes."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from content.errors import PushInvalid, PushStatusError
from content.models import Push
from content.services import pushes
from tests.helpers import in_threads

from .push_factories import PushFactory

S = Push.Status


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "to", "ok"),
    [
        (S.DRAFT, S.SCHEDULED, True),
        (S.DRAFT, S.SENDING, False),
        (S.DRAFT, S.SENT, False),
        (S.SCHEDULED, S.SENDING, True),
        (S.SCHEDULED, S.CANCELLED, True),
        (S.SENDING, S.SENT, True),
        (S.SENDING, S.PARTIALLY_FAILED, True),
        (S.SENDING, S.CANCELLED, True),
        (S.SENDING, S.SCHEDULED, False),
        (S.SENT, S.SENDING, False),
        (S.SENT, S.CANCELLED, False),
        (S.CANCELLED, S.SCHEDULED, False),
        (S.PARTIALLY_FAILED, S.SENT, False),
    ],
)
def test_push_set_status_allows_only_legal_moves(start, to, ok):
    push = PushFactory()
    Push.objects.filter(pk=push.pk).update(status=start)
    push.refresh_from_db()
    if ok:
        pushes.push_set_status(push, to=to)
        assert Push.objects.get(pk=push.pk).status == to
    else:
        with pytest.raises(PushStatusError):
            pushes.push_set_status(push, to=to)
        assert Push.objects.get(pk=push.pk).status == start


@pytest.mark.django_db
def test_unknown_status_is_refused():
    with pytest.raises(PushStatusError):
        pushes.push_set_status(PushFactory(), to="exploded")


@pytest.mark.django_db
def test_schedule_needs_a_segment_and_content():
    with pytest.raises(PushInvalid):
        pushes.push_schedule(push=PushFactory(segment=None))
    with pytest.raises(PushInvalid):
        pushes.push_schedule(push=PushFactory(template=None))
    assert not Push.objects.exclude(status=S.DRAFT).exists()


@pytest.mark.django_db
def test_reschedule_moves_send_at_and_a_future_push_is_not_claimed():
    push = PushFactory()
    later = timezone.now() + dt.timedelta(hours=2)
    pushes.push_schedule(push=push, send_at=timezone.now() + dt.timedelta(minutes=5))
    pushes.push_reschedule(push=push, send_at=later)
    assert Push.objects.get(pk=push.pk).send_at == later
    assert pushes.pushes_claim_due(now=timezone.now() + dt.timedelta(minutes=10)) == []
    assert pushes.pushes_claim_due(now=later) == [push.pk]
    assert Push.objects.get(pk=push.pk).status == S.SENDING


@pytest.mark.django_db
def test_cancel_a_scheduled_push_and_it_is_never_claimed():
    push = PushFactory()
    pushes.push_schedule(push=push, send_at=timezone.now())
    pushes.push_cancel(push=push)
    assert pushes.pushes_claim_due() == []
    with pytest.raises(PushStatusError):
        pushes.push_schedule(push=push)


def _due(push: Push) -> None:
    """Scheduled and due, without the countdown task push_schedule enqueues (a session worker could claim it)."""
    Push.objects.filter(pk=push.pk).update(status=S.SCHEDULED, send_at=timezone.now() - dt.timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)
def test_two_claimers_racing_for_one_due_push_claim_it_once():
    push = PushFactory()
    _due(push)
    results = in_threads(8, lambda _i: pushes.pushes_claim_due())
    assert sorted(results, key=len) == [[]] * 7 + [[push.pk]]
    assert Push.objects.get(pk=push.pk).status == S.SENDING


@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_a_push_locked_by_another_claimer():
    """SKIP LOCKED: while one transaction holds the due push, another claim returns nothing instead of waiting."""
    push = PushFactory()
    _due(push)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        from django.db import transaction

        try:
            with transaction.atomic():
                list(Push.objects.select_for_update().filter(pk=push.pk))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(10)
    try:
        assert pushes.pushes_claim_due() == []
    finally:
        release.set()
        t.join()
    assert pushes.pushes_claim_due() == [push.pk]


@pytest.mark.django_db
def test_rows_left_sending_by_a_dead_worker_become_unknown_and_are_not_resent():
    from content.models import Delivery
    from content.services.deliveries import deliveries_send_page

    from .factories import SubscriberFactory

    SubscriberFactory.create_batch(2)
    push = PushFactory()
    _due(push)
    pushes.pushes_claim_due(push_id=push.pk)
    push.refresh_from_db()
    pushes.push_resolve(push=push)
    long_ago = timezone.now() - dt.timedelta(minutes=30)
    first, second = Delivery.objects.filter(push=push).order_by("id")
    # The worker claimed the first row and died before writing its outcome: it stays "sending".
    Delivery.objects.filter(pk=first.pk).update(status="sending", claimed_at=long_ago, attempts=1)
    Delivery.objects.filter(pk=second.pk).update(status="skipped", reason="paused")
    Push.objects.filter(pk=push.pk).update(started_at=long_ago, updated_at=long_ago)
    assert deliveries_send_page(push_id=push.pk, lo=first.pk, hi=None).claimed == 0  # a rerun does not resend it
    pushes.pushes_resume_stalled()
    first.refresh_from_db()
    assert (first.status, first.reason) == ("unknown", "worker_lost")
    push.refresh_from_db()
    assert push.status == S.PARTIALLY_FAILED
