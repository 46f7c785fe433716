"""Profiles after a follow: the callback stores the follow, a real Celery worker fetches the profile from the fake
WeChat server over HTTP (user/info/batchget, at most 100 openids a call) and stores it."""

from __future__ import annotations

import pytest

from accounts.models import Interaction, Subscriber, Tag
from accounts.profiles import profiles_fetch_pending
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import follow_ups_run, token_fetched, wait_for

BATCHGET = "/cgi-bin/user/info/batchget"


pytestmark = pytest.mark.usefixtures("english")  # asserts the English source strings


def _wechat_tag(fake, name: str) -> int:
    return fake.api("cgi-bin/tags/create", {"tag": {"name": name}}, access_token=fake.fetch_token())["tag"]["id"]


def _answered(fake) -> list[dict]:
    """batchget calls that WeChat answered with profiles (not a refused token or an injected fault)."""
    return [c for c in fake.calls(BATCHGET) if c["status"] == 200 and not c["errcode"]]


def _batchget_openids(fake) -> list[list[str]]:
    return [[u["openid"] for u in call["body"]["user_list"]] for call in _answered(fake)]


def _profiled(count: int):
    return lambda: Subscriber.objects.filter(profile_fetched_at__isnull=False).count() >= count


def test_a_follow_gets_its_profile_from_wechat_through_the_worker(fake_wechat, celery_worker, poster):
    vip = _wechat_tag(fake_wechat, "VIP")
    fake_wechat.add_users(
        [
            {
                "openid": "oProfile_000000000000000001",
                "unionid": "oUnion_00000000000000000001",
                "nickname": "小梅",
                "language": "en",
                "remark": "met at the fair",
                "subscribe_scene": "ADD_SCENE_QR_CODE",
                "qr_scene_str": "fair-2026",
                "tagid_list": [vip],
            }
        ]
    )

    response = poster.post(build_message("subscribe", openid="oProfile_000000000000000001"), mode="safe")
    assert response.status_code == 200

    wait_for(_profiled(1), timeout=30, message=f"profile not fetched\n{celery_worker.log()[-3000:]}")
    subscriber = Subscriber.objects.get(openid="oProfile_000000000000000001")
    assert subscriber.unionid == "oUnion_00000000000000000001"
    assert subscriber.nickname == "小梅"
    assert subscriber.language == "en"
    assert subscriber.remark == "met at the fair"
    assert subscriber.subscribe_scene == "ADD_SCENE_QR_CODE"
    assert subscriber.qr_scene_str == "fair-2026"
    assert [t.name for t in subscriber.tags.all()] == ["VIP"]
    assert Tag.objects.get(name="VIP").wechat_tag_id == vip
    assert _batchget_openids(fake_wechat) == [["oProfile_000000000000000001"]]


def test_150_follows_take_two_batchget_calls_of_at_most_100(fake_wechat, celery_worker, poster):
    openids = fake_wechat.add_users(generate=150)
    # All 150 follows are stored before the first fetch runs: the worker is stopped while they arrive (their
    # follow-ups wait in the queue), as when a burst of follows lands within the fetch's batching delay.
    celery_worker.stop()
    for openid in openids:
        assert poster.post(build_message("subscribe", openid=openid), mode="plain").status_code == 200
    celery_worker.start()

    wait_for(_profiled(150), timeout=60, message=f"profiles not fetched\n{celery_worker.log()[-3000:]}")
    batches = _batchget_openids(fake_wechat)
    assert all(len(batch) <= 100 for batch in batches)
    assert sorted(o for batch in batches for o in batch) == sorted(openids)  # each profile fetched exactly once
    assert len(batches) == 2


def test_a_refollow_fetches_the_profile_again_and_a_fetch_twice_does_nothing(fake_wechat, settings, db):
    settings.WECHAT_API_BASE_URL = fake_wechat.url
    token_fetched(fake_wechat)
    (openid,) = fake_wechat.add_users([{"openid": "oRefollow_00000000000000001", "remark": "first"}])
    Subscriber.objects.create(openid=openid, is_following=True, subscribed_at="2026-01-01T00:00:00Z")

    assert profiles_fetch_pending() == 1
    assert profiles_fetch_pending() == 0  # idempotent: nothing pending any more
    assert len(_answered(fake_wechat)) == 1

    fake_wechat.add_users([{"openid": openid, "remark": "second"}])
    Subscriber.objects.filter(openid=openid).update(subscribed_at="2099-01-01T00:00:00Z")  # a later follow
    assert profiles_fetch_pending() == 1
    assert Subscriber.objects.get(openid=openid).remark == "second"


def test_unknown_and_unfollowed_openids_do_not_block_the_others(fake_wechat, settings, db):
    settings.WECHAT_API_BASE_URL = fake_wechat.url
    token_fetched(fake_wechat)
    known, gone = fake_wechat.add_users(
        [{"openid": "oKnown_0000000000000000001"}, {"openid": "oGone_00000000000000000001"}]
    )
    fake_wechat.unsubscribe(gone)
    for openid in (known, gone, "oUnknownToWeChat_0000000001"):
        Subscriber.objects.create(openid=openid, is_following=True, subscribed_at="2026-01-01T00:00:00Z")

    assert profiles_fetch_pending() == 3  # batchget refuses the batch for the unknown openid: it is isolated

    assert Subscriber.objects.get(openid=known).profile_fetched_at is not None
    assert Subscriber.objects.get(openid=gone).is_following is False  # WeChat says they left
    unknown = Subscriber.objects.get(openid="oUnknownToWeChat_0000000001")
    assert unknown.is_following is True and unknown.profile_fetched_at is not None  # left alone, not asked again
    assert profiles_fetch_pending() == 0


@pytest.mark.parametrize(
    ("fault", "times"), [({"errcode": 45009}, 2), ({"status": 503}, 5)], ids=["quota-45009", "http-503"]
)
def test_a_failed_batchget_is_retried_by_the_worker_not_lost(fake_wechat, celery_worker, poster, fault, times):
    # 5 x 503 is more than the client's own retries of a 5xx (3): the task's retry has to finish the job.
    fake_wechat.configure(faults=[{"path": BATCHGET, "times": times, **fault}])
    (openid,) = fake_wechat.add_users([{"openid": "oRetry_00000000000000000001", "remark": "patient"}])

    assert poster.post(build_message("subscribe", openid=openid), mode="plain").status_code == 200

    wait_for(_profiled(1), timeout=60, message=f"profile lost after errors\n{celery_worker.log()[-3000:]}")
    assert Subscriber.objects.get(openid=openid).remark == "patient"
    calls = fake_wechat.calls(BATCHGET)
    assert len([c for c in calls if c["fault"]]) == times  # every injected failure was met, then one call worked
    assert _answered(fake_wechat) == [calls[-1]]


def test_a_batch_costs_the_same_queries_for_10_or_100_subscribers(fake_wechat, settings, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.profiles import profiles_fetch_batch

    settings.WECHAT_API_BASE_URL = fake_wechat.url
    token_fetched(fake_wechat)
    tag = fake_wechat.api("cgi-bin/tags/create", {"tag": {"name": "t"}}, access_token=fake_wechat.fetch_token())

    def queries(count: int, prefix: str) -> int:
        openids = fake_wechat.add_users(
            [{"openid": f"{prefix}{i:024d}", "tagid_list": [tag["tag"]["id"]]} for i in range(count)]
        )
        Subscriber.objects.bulk_create([Subscriber(openid=o, is_following=True) for o in openids])
        with CaptureQueriesContext(connection) as ctx:
            result = profiles_fetch_batch()
        assert result is not None and result.fetched == count
        return len(ctx.captured_queries)

    queries(1, "oWarm")  # the tag becomes known locally
    assert queries(10, "oTen") == queries(100, "oHundred")


@pytest.mark.django_db(transaction=True)
def test_while_wechat_answers_slowly_the_callback_is_not_blocked_and_no_other_worker_takes_the_rows(
    fake_wechat, settings, poster
):
    import threading

    from django.db import connection

    from accounts.profiles import profiles_fetch_batch

    settings.WECHAT_API_BASE_URL = fake_wechat.url
    token_fetched(fake_wechat)
    (openid,) = fake_wechat.add_users([{"openid": "oSlow_000000000000000000001"}])
    Subscriber.objects.create(openid=openid, is_following=True, subscribed_at="2026-01-01T00:00:00Z")
    fake_wechat.configure(faults=[{"path": BATCHGET, "timeout": 2, "mode": "answer", "times": 1}])  # answers 2 s late
    results = []

    def slow_fetch():
        try:
            results.append(profiles_fetch_batch())
        finally:
            connection.close()

    fetching = threading.Thread(target=slow_fetch)
    fetching.start()
    wait_for(lambda: Subscriber.objects.filter(openid=openid, profile_claimed_until__isnull=False).exists(), timeout=10)

    assert profiles_fetch_batch() is None  # another worker: the row is claimed, nothing to take
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '1s'")  # the callback below fails if the row is locked
    response = poster.post(build_message("text", openid=openid), mode="plain")
    assert response.status_code == 200
    fetching.join(timeout=30)

    assert results and results[0].fetched == 1
    follow_ups_run()  # the text's last_interaction_at (no worker runs here)
    subscriber = Subscriber.objects.get(openid=openid)
    assert subscriber.profile_fetched_at is not None and subscriber.profile_claimed_until is None
    assert subscriber.last_interaction_at is not None  # the text, stored during the fetch, moved it


def test_the_profile_fetch_gives_way_to_follows_waiting_for_their_follow_ups(fake_wechat, settings, db, monkeypatch):
    """In a burst of follows, a fetch that ran until no profile is pending would hold a worker process for as long as
    the callback creates subscribers, and the follows' welcomes (WeChat allows them only in the minute after the
    follow) would wait behind it: while a follow waits, the task fetches one batch and schedules the rest."""
    from accounts import profiles, tasks
    from tests.accounts.factories import InteractionFactory

    settings.WECHAT_API_BASE_URL = fake_wechat.url
    token_fetched(fake_wechat)
    openids = fake_wechat.add_users(generate=250)
    for openid in openids:
        Subscriber.objects.create(openid=openid, is_following=True, subscribed_at="2026-01-01T00:00:00Z")
    follow = InteractionFactory(subscriber=Subscriber.objects.first(), kind="subscribe", processed_at=None)
    scheduled = []
    monkeypatch.setattr(profiles, "profile_fetch_schedule", lambda **kwargs: scheduled.append(kwargs))

    assert tasks.profiles_fetch_pending_task() == 100  # one batch, then the follow goes first
    assert scheduled == [{}]  # the rest is fetched by the next task
    assert Subscriber.objects.filter(profile_fetched_at__isnull=False).count() == 100

    Interaction.objects.filter(pk=follow.pk).update(processed_at="2026-01-01T00:00:01Z")  # its follow-ups ran
    assert tasks.profiles_fetch_pending_task() == 150  # nothing waits: every pending profile, in one task
    assert scheduled == [{}]
    assert len(_batchget_openids(fake_wechat)) == 3
