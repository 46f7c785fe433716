"""The outbox: interactions with follow-up work wait for the Celery task; the sweeper catches lost enqueues."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import outbox, tasks
from accounts.models import Interaction
from tests.accounts.factories import InteractionFactory
from tests.fixtures.wechat_payloads import build_message
from wechat_crm.schedules import BEAT_SCHEDULE
from wechat_crm.wechat import dispatch

pytestmark = pytest.mark.django_db


def _recorder(seen: list):
    """A follow-up that notes the ids of the interactions it was given."""
    return lambda interactions: seen.extend(interaction.pk for interaction in interactions)


def test_only_interactions_with_follow_ups_wait(wechat_callback, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setitem(dispatch.ROUTES, "subscribe", dispatch.Route(follow_ups=[lambda interactions: None]))
    monkeypatch.setitem(dispatch.ROUTES, "text", dispatch.Route())  # no follow-up work
    with django_capture_on_commit_callbacks() as callbacks:
        wechat_callback.post(build_message("subscribe"))
        wechat_callback.post(build_message("text"))

    assert Interaction.objects.get(kind="subscribe").processed_at is None
    assert Interaction.objects.get(kind="text").processed_at is not None
    assert len(callbacks) == 1  # one enqueue, for the subscribe, after commit


def test_processing_runs_the_registered_follow_ups_once(monkeypatch):
    seen = []
    monkeypatch.setitem(dispatch.ROUTES, "subscribe", dispatch.Route(follow_ups=[_recorder(seen)]))
    interaction = InteractionFactory(kind="subscribe", processed_at=None)

    assert tasks.interaction_process(interaction.pk) is True
    assert tasks.interaction_process(interaction.pk) is False  # a second delivery of the task does nothing

    assert seen == [interaction.pk]
    interaction.refresh_from_db()
    assert interaction.processed_at is not None


def test_a_failing_follow_up_leaves_the_interaction_pending(monkeypatch):
    def broken(interactions):
        raise RuntimeError("profile service down")

    monkeypatch.setitem(dispatch.ROUTES, "subscribe", dispatch.Route(follow_ups=[broken]))
    interaction = InteractionFactory(kind="subscribe", processed_at=None)

    with pytest.raises(RuntimeError):
        tasks.interaction_process(interaction.pk)

    interaction.refresh_from_db()
    assert interaction.processed_at is None


def test_a_batch_handed_over_after_commit_is_processed_even_if_one_fails(monkeypatch):
    seen = []

    def follow_up(interactions):
        if any(interaction.content == "bad" for interaction in interactions):
            raise RuntimeError("boom")
        seen.extend(interaction.pk for interaction in interactions)

    monkeypatch.setitem(dispatch.ROUTES, "subscribe", dispatch.Route(follow_ups=[follow_up]))
    first, bad, last = (InteractionFactory(kind="subscribe", processed_at=None, content=c) for c in ("a", "bad", "b"))

    assert tasks.interactions_process([first.pk, bad.pk, last.pk]) == 2

    assert seen == [first.pk, last.pk]
    bad.refresh_from_db()
    assert bad.processed_at is None


def test_the_sweeper_processes_interactions_left_pending_for_over_30_seconds(monkeypatch):
    seen = []
    monkeypatch.setitem(dispatch.ROUTES, "subscribe", dispatch.Route(follow_ups=[_recorder(seen)]))
    old = InteractionFactory(kind="subscribe", processed_at=None, received_at=timezone.now() - timedelta(minutes=2))
    fresh = InteractionFactory(kind="subscribe", processed_at=None, received_at=timezone.now())
    done = InteractionFactory(kind="text")

    assert tasks.interactions_sweep() == 1

    assert seen == [old.pk]
    fresh.refresh_from_db()
    assert fresh.processed_at is None  # its own task is probably on its way
    done.refresh_from_db()
    assert done.processed_at is not None


def test_the_sweeper_runs_every_minute():
    entry = BEAT_SCHEDULE["accounts-interactions-sweep"]
    assert entry["task"] == "accounts.tasks.interactions_sweep"
    assert entry["options"]["expires"] < 60


def _point_celery_at(app, url):
    """Switch the broker and drop every pooled connection, so that the next publish connects to `url`."""
    from kombu import pools

    app.conf.broker_url = url
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def test_a_broker_outage_does_not_fail_the_callback(wechat_callback, caplog, django_capture_on_commit_callbacks):
    from wechat_crm.celery import app

    original = app.conf.broker_url
    _point_celery_at(app, "redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = wechat_callback.post(build_message("subscribe"))
        assert outbox.flush()
    finally:
        _point_celery_at(app, original)

    assert response.status_code == 200
    assert Interaction.objects.get().processed_at is None  # the sweeper will pick it up
    assert "could not enqueue" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_committed_subscribe_is_handed_to_the_broker(wechat_callback, settings):
    import base64
    import json

    import redis

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("reads the Redis broker's queue")
    wechat_callback.post(build_message("subscribe"))
    assert outbox.flush()

    interaction = Interaction.objects.get()
    queued = []
    for raw in redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange("inbound", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "accounts.tasks.interactions_process":
            args, _, _ = json.loads(base64.b64decode(message["body"]))
            queued.extend(args[0])
    assert interaction.pk in queued
