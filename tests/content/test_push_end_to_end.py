"""End to end: a scheduled push sent by a real Celery worker through Redis and PostgreSQL to the fake WeChat server.

1,000 subscribers; a segment of 600 (a tag) with unfollowed, paused, opted-out, capped and left-on-WeChat members.
Afterwards the fake holds exactly one successful template/send per recipient who should get one, none for anyone
else, and every delivery row is final — also when the fake answers 10% 5xx and some 45011.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone

from accounts.models import Interaction, Subscriber, Tag
from content.models import Delivery, Push, Segment
from content.services import pushes
from content.services.deliveries import tallies
from tests.helpers import wait_for, wechat_shared_state_clear
from wechat_crm.wechat import ratelimit

from .factories import ArticleFactory, MessageTemplateFactory, TopicFactory
from .push_factories import policy

TEMPLATE = "/cgi-bin/message/template/send"
D = Delivery.Status
FINAL = {D.SENT, D.DELIVERED, D.FAILED, D.SKIPPED, D.ERROR, D.UNKNOWN}


@pytest.fixture
def world(celery_worker, fake_wechat, settings):
    """The subscribers, the segment, the push; returns who should receive it and who should be skipped why."""
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    policy(max_retry_delay_seconds=2)  # quiet hours off; WeChat's "retry next minute" capped for the test
    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.set([topic])
    target = Tag.objects.create(name="target")
    now = timezone.now()
    subs = Subscriber.objects.bulk_create(
        Subscriber(openid=f"oE2E{i:05d}", nickname=f"n{i}", is_following=True, subscribed_at=now) for i in range(1000)
    )
    in_segment = subs[:600]
    Subscriber.tags.through.objects.bulk_create(
        Subscriber.tags.through(subscriber_id=s.pk, tag_id=target.pk) for s in in_segment
    )
    unfollowed, paused, opted_out, capped, left = (in_segment[i : i + n] for i, n in
                                                   ((0, 10), (10, 20), (30, 40), (70, 30), (100, 10)))  # fmt: skip
    Subscriber.objects.filter(pk__in=[s.pk for s in unfollowed]).update(is_following=False)
    Subscriber.objects.filter(pk__in=[s.pk for s in paused]).update(pushes_paused=True)
    Subscriber.topics_opted_out.through.objects.bulk_create(
        Subscriber.topics_opted_out.through(subscriber_id=s.pk, topic_id=topic.pk) for s in opted_out
    )
    earlier = Push.objects.create(name="earlier", status=Push.Status.SENT)
    Delivery.objects.bulk_create(
        Delivery(push=earlier, subscriber=s, channel="template", status=D.DELIVERED, claimed_at=now, sent_at=now,
                 created_at=now)
        for s in capped
    )  # fmt: skip
    Delivery.objects.bulk_create(
        Delivery(push=Push.objects.create(name=f"earlier {k}", status=Push.Status.SENT), subscriber=s,
                 channel="template", status=D.DELIVERED, claimed_at=now, sent_at=now, created_at=now)
        for k in range(3) for s in capped
    )  # fmt: skip
    fake_wechat.add_users([{"openid": s.openid, "subscribe": 0 if s in left else 1} for s in subs])
    segment = Segment.objects.create(name="target", rules={"op": "and", "rules": [
        {"type": "tags", "match": "any", "tags": [target.pk]}]})  # fmt: skip
    push = Push.objects.create(
        name="Weekly", channel=Push.Channel.TEMPLATE, article=article,
        template=MessageTemplateFactory(article=article), segment=segment,
    )  # fmt: skip
    skipped = {s.openid for group in (paused, opted_out, capped) for s in group}
    excluded = {s.openid for s in unfollowed}
    expected = {s.openid for s in in_segment} - skipped - excluded - {s.openid for s in left}
    yield {
        "push": push, "fake": fake_wechat, "expected": expected, "left": {s.openid for s in left},
        "reasons": {"paused": len(paused), "topic_opt_out": len(opted_out), "frequency_cap": len(capped)},
    }  # fmt: skip
    fake_wechat.configure(callback_url="", job_finish_events=False)
    _wait_worker_idle()


def _wait_worker_idle() -> None:
    """Before the test database is flushed: no task queued, running or waiting for its countdown."""
    from wechat_crm.celery import app

    redis = ratelimit.redis_client()

    def idle() -> bool:
        if any(redis.llen(q) for q in ("outbound", "inbound", "default", "reports")):
            return False
        inspect = app.control.inspect(timeout=1.0)
        busy = [*((inspect.active() or {}).values()), *((inspect.scheduled() or {}).values())]
        return not any(busy)

    wait_for(idle, timeout=90, interval=0.5, message="the worker did not become idle")


def _run_and_wait(push: Push, timeout: float = 240) -> Push:
    pushes.push_schedule(push=push, send_at=timezone.now())  # the countdown task claims it in the worker

    def done():
        push.refresh_from_db()
        return push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED, Push.Status.CANCELLED)

    wait_for(done, timeout=timeout, interval=0.5, message="the push did not finish")
    return push


def _check(world) -> None:
    push, fake = world["push"], world["fake"]
    calls = fake.calls(TEMPLATE)
    ok = Counter(c["body"]["touser"] for c in calls if c["errcode"] == 0)
    assert set(ok) == world["expected"]
    assert max(ok.values()) == 1, [o for o, n in ok.items() if n > 1][:5]
    touched = {c["body"]["touser"] for c in calls}
    assert touched <= world["expected"] | world["left"]  # nobody skipped or outside the segment was ever called
    rows = Delivery.objects.filter(push=push)
    assert rows.count() == 590  # 600 in the segment, 10 no longer following
    statuses = Counter(rows.values_list("status", flat=True))
    assert set(statuses) <= FINAL, statuses
    reasons = Counter(rows.filter(status=D.SKIPPED).values_list("reason", flat=True))
    assert reasons == world["reasons"]
    failed = set(rows.filter(status=D.FAILED, reason="not_following").values_list("subscriber__openid", flat=True))
    assert failed == world["left"]
    sent_rows = rows.filter(status__in=(D.SENT, D.DELIVERED))
    assert set(sent_rows.values_list("subscriber__openid", flat=True)) == world["expected"]
    assert sent_rows.filter(msgid__isnull=True).count() == 0


def test_a_push_reaches_each_recipient_once_through_a_real_worker(world):
    push = _run_and_wait(world["push"])
    assert push.status == Push.Status.SENT
    _check(world)
    assert not Subscriber.objects.filter(openid__in=world["left"], is_following=True).exists()


def test_with_5xx_and_minute_quota_errors_each_recipient_still_gets_exactly_one(world):
    world["fake"].configure(error_5xx_rate=0.1, errcode_rates={"45011": 0.03})
    push = _run_and_wait(world["push"])
    _check(world)
    calls = world["fake"].calls(TEMPLATE)
    assert any(c["fault"] and c["fault"].startswith("http_5") for c in calls)
    assert any(c["errcode"] == 45011 for c in calls)
    retried = Delivery.objects.filter(push=push, attempts__gt=1)
    assert retried.exists() and push.finished_at - push.started_at < dt.timedelta(minutes=5)


@pytest.mark.parametrize("before_answer", [False, True], ids=["after_answer", "before_answer"])
def test_template_job_finish_reports_through_our_callback_mark_each_delivery(world, live_server, before_answer):
    """WeChat's TEMPLATESENDJOBFINISH goes to our real callback; the worker's follow-up marks the delivery by msgid.
    WeChat may post it before it answers the send (before_answer): the follow-up then often runs before the page has
    written the msgid, or while it writes it, and the report must still mark its delivery, once."""
    fake = world["fake"]
    fake.configure(
        callback_url=live_server.url + "/wechat/callback/",
        callback_delay=0,
        job_finish_before_answer=before_answer,
        template_failure_rates={"failed:user block": 0.1, "failed: system failed": 0.05},
    )
    _run_and_wait(world["push"])
    rows = Delivery.objects.filter(push=world["push"], subscriber__openid__in=world["expected"])

    def reported():
        return not rows.filter(status=D.SENT).exists()

    wait_for(reported, timeout=120, interval=0.5, message="job-finish reports did not reach every delivery")
    # The fake records its deliveries in batches, a moment after our callback answered them.
    expected = len(world["expected"])
    wait_for(lambda: fake.delivery_count("TEMPLATESENDJOBFINISH") >= expected, timeout=10, interval=0.2)
    got = Counter(rows.values_list("status", "reason"))
    assert sum(got.values()) == len(world["expected"]) == fake.delivery_count("TEMPLATESENDJOBFINISH")
    assert set(got) == {(D.DELIVERED, ""), (D.FAILED, "user_block"), (D.FAILED, "system_failed")}
    assert got[(D.DELIVERED, "")] > got[(D.FAILED, "user_block")] > 0
    # Each report counted once in the push's counters, however it reached its delivery.
    wait_for(lambda: not Interaction.objects.filter(processed_at__isnull=True).exists(), timeout=30, interval=0.3)
    counters = tallies.push_tallies(push_ids=[world["push"].pk])[world["push"].pk]
    baseline = (tallies.BASELINE_FOLLOWERS, tallies.BASELINE_UNFOLLOWS)
    assert {k: n for k, n in counters.items() if n and k not in baseline} == tallies.recount(push_id=world["push"].pk)
