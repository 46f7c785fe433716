"""A push's counters (content.services.deliveries.tallies) equal a recount from the rows they count, after a push sent
by a real Celery worker to the fake WeChat server with retries (5xx, 45011), recipients who left on WeChat (43004),
skips, WeChat's job-finish reports through our callback, clicks through the redirect and unfollows through the
callback; the rebuild command changes nothing then, however often it runs; the report, the progress and the
dashboard read the counters."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Interaction, Subscriber
from content import clicks, services
from content.models import Delivery, Push, PushTally, Segment
from content.selectors import push_report
from content.services import pushes
from content.services.deliveries import push_progress, tallies
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import wait_for, wechat_shared_state_clear

from .factories import ArticleFactory, MessageTemplateFactory
from .push_factories import policy
from .test_push_end_to_end import _wait_worker_idle

D = Delivery.Status


@pytest.fixture
def sent_push(celery_worker, fake_wechat, settings, live_server):
    """A push to 300 subscribers (20 paused, 10 left on WeChat) sent by the worker with faults and job-finish
    reports; returns it once every delivery is final and reported."""
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    policy(max_retry_delay_seconds=2)
    now = timezone.now()
    subs = Subscriber.objects.bulk_create(
        Subscriber(openid=f"oTally{i:04d}", nickname=f"t{i}", is_following=True, subscribed_at=now,
                   pushes_paused=i < 20)
        for i in range(300)
    )  # fmt: skip
    fake_wechat.add_users([{"openid": s.openid, "subscribe": 0 if 20 <= i < 30 else 1} for i, s in enumerate(subs)])
    fake_wechat.configure(
        error_5xx_rate=0.08,
        errcode_rates={"45011": 0.03},
        callback_url=live_server.url + "/wechat/callback/",
        callback_delay=0,
        template_failure_rates={"failed:user block": 0.1},
    )
    article = ArticleFactory()
    push = Push.objects.create(
        name="Counted", channel=Push.Channel.TEMPLATE, article=article,
        template=MessageTemplateFactory(article=article), segment=Segment.objects.create(name="all", rules={}),
    )  # fmt: skip
    pushes.push_schedule(push=push, send_at=timezone.now())

    def finished() -> bool:
        push.refresh_from_db()
        return push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED)

    wait_for(finished, timeout=240, interval=0.5, message="the push did not finish")
    rows = Delivery.objects.filter(push=push)

    def unreported() -> str:
        """What to read when a report is missing: the deliveries still waiting, and what the fake posted for them."""
        waiting = list(rows.filter(status=D.SENT).values_list("msgid", flat=True)[:20])
        posted = [
            d
            for d in fake_wechat.deliveries("TEMPLATESENDJOBFINISH")
            if str(d.get("msg_id")) in {str(m) for m in waiting}
        ]
        return (
            f"job-finish reports did not reach every delivery: {rows.filter(status=D.SENT).count()} still sent, "
            f"e.g. msgids {waiting}; the fake's posts of those: {posted}\n{celery_worker.log()[-3000:]}"
        )

    wait_for(lambda: not rows.filter(status=D.SENT).exists(), timeout=240, interval=0.5,
             message=unreported)  # fmt: skip
    yield {"push": push, "subs": subs, "fake": fake_wechat}
    fake_wechat.configure(callback_url="", job_finish_events=False, error_5xx_rate=0, errcode_rates={},
                          template_failure_rates={})  # fmt: skip
    _wait_worker_idle()


def _settled() -> bool:
    """The clicks stored from the click buffer (the redirect asks the worker for a drain) and every follow-up run."""
    return not clicks.pending() and not Interaction.objects.filter(processed_at__isnull=True).exists()


def _counters(push: Push) -> Counter[str]:
    return +tallies.push_tallies(push_ids=[push.pk])[push.pk]


def _without_baseline(counters: Counter[str]) -> dict[str, int]:
    return {k: n for k, n in counters.items() if k not in (tallies.BASELINE_FOLLOWERS, tallies.BASELINE_UNFOLLOWS)}


def test_counters_equal_a_recount_after_a_real_send_with_retries_clicks_and_unfollows(sent_push, client, poster):
    push = sent_push["push"]
    rows = Delivery.objects.filter(push=push)
    reached = list(rows.filter(status__in=(D.SENT, D.DELIVERED)).select_related("subscriber").order_by("pk"))
    assert len(reached) > 200 and rows.filter(attempts__gt=1).exists()  # retries happened
    # Clicks through the redirect: 30 subscribers click one link, 10 of them a second one too.
    for i, delivery in enumerate(reached[:30]):
        for target in ["https://shop.example/a", "https://shop.example/b"][: 2 if i < 10 else 1]:
            url = services.link_track(target, subscriber_id=delivery.subscriber_id, push_id=push.pk)
            assert client.get("/r/" + url.rsplit("/r/", 1)[1]).status_code == 302
    # Unfollows through the callback: 15 recipients leave now; 5 of them come back and leave again.
    now = int(timezone.now().timestamp()) + 1
    for i, delivery in enumerate(reached[40:55]):
        openid = delivery.subscriber.openid
        assert poster.post(build_message("unsubscribe", openid=openid, create_time=now)).status_code == 200
        if i < 5:
            poster.post(build_message("subscribe", openid=openid, create_time=now + 1))
            poster.post(build_message("unsubscribe", openid=openid, create_time=now + 2))
    wait_for(_settled, timeout=60, interval=0.3, message="the follow-ups did not run")

    counters = _counters(push)
    assert _without_baseline(counters) == tallies.recount(push_id=push.pk)
    # And against what the rows say, counted here.
    statuses = Counter(rows.values_list("status", flat=True))
    assert {k.removeprefix("status:"): n for k, n in counters.items() if k.startswith("status:")} == +statuses
    assert counters["skipped:paused"] == 20 and counters["recipients"] == 300
    assert statuses[D.FAILED] >= 10  # the 10 who left on WeChat (43004), and WeChat's "user block" reports
    assert (counters["clicks"], counters["clickers"]) == (40, 30)
    assert counters["unfollows_24h"] == counters["unfollows_72h"] == 15

    report = push_report(push=push)
    assert (report["recipients"], report["skipped"], report["clicks"], report["unique_clickers"]) == (300, 20, 40, 30)
    assert report["delivered"] == statuses[D.DELIVERED] and report["failed"] == statuses[D.FAILED]
    assert report["unfollows_24h"] == 15 and report["skipped_by_reason"] == {"paused": 20}
    progress = push_progress(push=push)
    assert progress["done"] == progress["recipients"] == 300
    assert progress["counts"] == {s: statuses.get(s, 0) for s in D.values}

    # The rebuild recounts the same, however often it runs, and leaves one row per counter.
    call_command("push_tallies_rebuild", push.pk)
    call_command("push_tallies_rebuild")
    assert _counters(push) == counters
    assert PushTally.objects.filter(push=push).count() == len(counters)


def test_rebuild_backfills_a_push_whose_counters_were_lost_and_compaction_keeps_the_sums(sent_push):
    push = sent_push["push"]
    before = _counters(push)
    tallies.tallies_compact(push_id=push.pk)
    assert _counters(push) == before
    assert PushTally.objects.filter(push=push).count() == len(before)
    PushTally.objects.filter(push=push).delete()  # a push sent before the counters were kept
    assert push_report(push=push)["recipients"] == 0
    call_command("push_tallies_rebuild", push.pk)
    after = _counters(push)
    assert _without_baseline(after) == _without_baseline(before)
    assert push_report(push=push)["recipients"] == 300


def test_a_cancelled_push_counts_its_skipped_rows(fake_sending, django_assert_num_queries):
    from .factories import SubscriberFactory
    from .push_factories import PushFactory

    for i in range(5):
        SubscriberFactory(openid=f"oCancel{i}")
    push = PushFactory()
    pushes.push_schedule(push=push, send_at=timezone.now())
    pushes.pushes_claim_due(push_id=push.pk)
    push.refresh_from_db()
    pushes.push_resolve(push=push)
    pushes.push_cancel(push=push)
    counters = _counters(push)
    assert counters["skipped:cancelled"] == counters["status:skipped"] == counters["recipients"] == 5
    assert _without_baseline(counters) == tallies.recount(push_id=push.pk)
    # The report reads the counters (1 query), the forwards' figures (2) and the mass batches (1), whatever the size.
    with django_assert_num_queries(4):
        report = push_report(push=push)
    assert (report["recipients"], report["skipped"], report["skipped_by_reason"]) == (5, 5, {"cancelled": 5})
    with django_assert_num_queries(2):  # the counters and the rows being sent
        assert push_progress(push=push)["done"] == 5
