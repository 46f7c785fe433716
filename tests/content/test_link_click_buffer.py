"""The click buffer of tracked links (content.clicks): the redirect answers once Redis holds the click, a drain
stores the clicks by batches, exactly once, and without Redis the click is stored directly."""

import json
import threading
import time
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from accounts import tasks as accounts_tasks
from accounts.models import Interaction, Subscriber
from content import clicks, selectors, services
from conversations.models import ScoreEntry, ScoreRule
from tests.helpers import clicks_drained, wait_for

from .factories import ArticleFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

TARGET = "https://shop.example.com/item/7"
REDIS_DOWN = {"default": {"BACKEND": "wechat_crm.cache.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}}


def _click(client, subscriber, *, target: str = TARGET, push_id: int | None = 4) -> None:
    url = services.link_track(target, subscriber_id=subscriber.pk, push_id=push_id)
    response = client.get(urlsplit(url).path)
    assert response.status_code == 302
    assert response["Location"] == target


@pytest.fixture(autouse=True)
def _link_click_points():
    ScoreRule.objects.update_or_create(kind="link_click", defaults={"points": 4})


def _redis():
    return clicks._client()


def test_the_redirect_answers_once_redis_holds_the_click_and_the_drain_stores_it(client):
    subscriber = SubscriberFactory()

    _click(client, subscriber)

    # Answered: the click is in Redis (a web process that dies now loses nothing), not yet in the database.
    assert clicks.pending() == 1
    assert not Interaction.objects.exists()
    assert clicks_drained() == 1
    assert clicks.pending() == 0
    click = selectors.link_clicks().get()
    assert (click.subscriber_id, click.url, click.data["push_id"], click.processed_at) == (
        subscriber.pk,
        TARGET,
        4,
        None,
    )


def test_the_first_click_asks_the_worker_for_a_drain():
    """The redirect asks for a drain (a Celery task on the inbound queue) at most once a second, from a thread."""
    from django.test import Client

    subscribers = SubscriberFactory.create_batch(3)
    redis = _redis()
    for thread in threading.enumerate():  # an earlier test's click may still be asking for its drain
        if thread.name == "link-clicks-kick":
            thread.join(timeout=10)
    redis.delete("inbound", clicks.KICK_KEY)

    started = time.monotonic()
    for subscriber in subscribers:
        _click(Client(), subscriber)
    seconds = time.monotonic() - started  # three clicks: well within a second, unless the machine is loaded

    def drains_asked() -> list[str]:
        return [json.loads(m)["headers"]["task"] for m in redis.lrange("inbound", 0, -1)]

    wait_for(lambda: drains_asked(), timeout=10, message="no drain was asked for")
    asked = drains_asked()
    assert set(asked) == {"content.tasks.link_clicks_drain"}
    assert len(asked) <= 1 + int(seconds), f"{len(asked)} drains asked for 3 clicks in {seconds:.2f} s"


def test_a_retried_drain_stores_each_click_once(client):
    """A drain that died after its commit, before it emptied its batch, leaves the batch to the next drain: its
    INSERT ... ON CONFLICT (dedupe_key) DO NOTHING stores nothing twice, and the follow-ups run once."""
    first, second, third = SubscriberFactory.create_batch(3)
    for subscriber in (first, second):
        _click(client, subscriber)
    # A drain takes the batch and commits it, then its process dies (the lock expires after it).
    redis = _redis()
    assert redis.set(clicks.LOCK_KEY, "dead-drain", nx=True)
    batch = clicks._script(redis, clicks._MOVE)(keys=[clicks.LOCK_KEY, clicks.DRAINING_KEY, clicks.BUFFER_KEY],
                                                args=["dead-drain", 100, 60_000])  # fmt: skip
    assert len(batch) == 2
    stored_before = clicks.clicks_store(entries=batch)
    assert len(stored_before) == 2
    redis.delete(clicks.LOCK_KEY)  # its lock expired
    _click(client, third)  # a click after the crash

    assert clicks_drained() == 1  # only the third: the dead drain's batch is there already
    assert clicks_drained() == 0
    assert clicks.pending() == 0
    rows = selectors.link_clicks()
    assert sorted(rows.values_list("subscriber_id", flat=True)) == sorted([first.pk, second.pk, third.pk])
    for pk in rows.values_list("pk", flat=True):
        accounts_tasks.interaction_process(pk)
    assert not accounts_tasks.interaction_process(stored_before[0])  # processed once; a second run does nothing
    assert ScoreEntry.objects.filter(subscriber=first).count() == 1


def test_a_drain_while_another_runs_does_nothing(client):
    _click(client, SubscriberFactory())
    assert _redis().set(clicks.LOCK_KEY, "another-drain", nx=True)

    assert clicks_drained() == 0

    assert clicks.pending() == 1 and not Interaction.objects.exists()
    _redis().delete(clicks.LOCK_KEY)
    assert clicks_drained() == 1


def test_the_drain_stores_a_batch_in_one_statement_and_its_follow_ups_run(client):
    article = ArticleFactory()
    people = SubscriberFactory.create_batch(4)
    erased = SubscriberFactory()
    for person in people:
        url = services.link_track(TARGET, subscriber_id=person.pk, push_id=9, content_id=article.pk)
        for _ in range(2):  # a double click: one click
            assert client.get(urlsplit(url).path).status_code == 302
    _click(client, erased)
    erased.delete()

    with CaptureQueriesContext(connection) as ctx:
        stored = clicks.clicks_drain(batch=3)
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().startswith("WITH")]

    assert stored == 4
    assert len(writes) == 2  # 5 clicks by batches of 3: one statement per batch
    assert not selectors.link_clicks().filter(subscriber_id=erased.pk).exists()
    for person in people:
        person.refresh_from_db()
        click = selectors.link_clicks().get(subscriber=person)
        assert person.last_interaction_at == click.created_at
        assert click.data == {"push_id": 9, "content_id": article.pk, "link_id": click.data["link_id"], "engaged": True}
    # The follow-ups, by batches, as the task the drain enqueued runs them: stage, score.
    ids = list(selectors.link_clicks().values_list("pk", flat=True))
    assert accounts_tasks.interactions_process(ids) == 4
    assert set(Subscriber.objects.filter(pk__in=[p.pk for p in people]).values_list("stage", flat=True)) == {"engaged"}
    assert ScoreEntry.objects.filter(subscriber__in=people).count() == 4


@pytest.mark.django_db(transaction=True)  # the view runs in autocommit, as in production
def test_without_redis_the_click_is_stored_directly(client, settings):
    """Redis down: the redirect still redirects and stores the click itself; a repeat of the time slot is one row."""
    subscriber = SubscriberFactory()
    settings.CACHES = REDIS_DOWN
    with freeze_time("2026-03-02 10:00:10"):
        url = services.link_track(TARGET, subscriber_id=subscriber.pk, push_id=2)
        for _ in range(2):
            response = client.get(urlsplit(url).path)
            assert response.status_code == 302
            assert response["Location"] == TARGET

    click = selectors.link_clicks().get()
    assert click.subscriber_id == subscriber.pk
    subscriber.refresh_from_db()
    assert subscriber.last_interaction_at == click.created_at


@pytest.mark.django_db(transaction=True)
def test_a_buffered_click_and_a_direct_one_of_the_same_slot_are_one_row(client, settings):
    """The dedupe key is the same on both paths: a click stored while Redis was down and its repeat buffered once
    Redis is back (no marker was set during the outage) are one click."""
    subscriber = SubscriberFactory()
    redis_caches = settings.CACHES
    with freeze_time("2026-03-02 10:00:10"):
        url = services.link_track(TARGET, subscriber_id=subscriber.pk, push_id=2)
        settings.CACHES = REDIS_DOWN
        assert client.get(urlsplit(url).path).status_code == 302
        assert selectors.link_clicks().count() == 1
        settings.CACHES = redis_caches
        assert client.get(urlsplit(url).path).status_code == 302
        assert clicks.pending() == 1

    assert clicks_drained() == 0
    assert selectors.link_clicks().count() == 1
