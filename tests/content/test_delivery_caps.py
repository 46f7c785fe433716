"""Caps, quotas, quiet hours, opt-outs and WeChat's answers, per delivery, against the fake WeChat server over HTTP.

The page tasks' service runs in this process here; test_push_end_to_end.py runs the same through a Celery worker.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone

from accounts.models import Subscriber
from content.models import Delivery, MassBatch, Push, SendPolicy
from content.services import pushes
from content.services.deliveries import (
    deliveries_send_page,
    delivery_job_finish,
    mass_job_finish,
    quiet_hours_end,
)
from tests.helpers import person_did

from .factories import ArticleFactory, SubscriberFactory, TopicFactory
from .push_factories import PushFactory, policy, reasons, send_now, statuses

TEMPLATE = "/cgi-bin/message/template/send"
CUSTOM = "/cgi-bin/message/custom/send"
D = Delivery.Status
NOW = timezone.now()

pytestmark = pytest.mark.django_db


def people(fake_sending, *names: str, **fields) -> dict[str, Subscriber]:
    """Subscribers named `names` (nickname and openid), following here and on the fake."""
    subs = {n: SubscriberFactory(nickname=n, openid=f"o_{n}", **fields) for n in names}
    fake_sending.add_users([{"openid": s.openid, "subscribe": 1} for s in subs.values()])
    return subs


def sent_to(fake_sending, path: str = TEMPLATE) -> list[str]:
    """Openids of the successful calls the fake recorded (repeats kept, to catch duplicates)."""
    return sorted(c["body"]["touser"] for c in fake_sending.calls(path, errcode=0))


def earlier_pushes(sub: Subscriber, n: int, *, days_ago: float = 1) -> None:
    """n sends to `sub` by other pushes, `days_ago` days ago."""
    for _ in range(n):
        other = PushFactory(status=Push.Status.SENT)
        at = NOW - dt.timedelta(days=days_ago)
        Delivery.objects.create(push=other, subscriber=sub, channel="template", status=D.DELIVERED, claimed_at=at,
                                sent_at=at, created_at=at)  # fmt: skip


def test_caps_opt_outs_and_pauses_skip_with_reasons_and_nobody_else_is_skipped(fake_sending):
    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.set([topic])
    subs = people(
        fake_sending, "ok1", "ok2", "paused", "optout", "capped", "old_sends", "personal", "wechat_left", "unfollowed"
    )
    Subscriber.objects.filter(pk=subs["paused"].pk).update(pushes_paused=True)
    subs["optout"].topics_opted_out.set([topic])
    earlier_pushes(subs["capped"], 4)
    earlier_pushes(subs["old_sends"], 4, days_ago=8)  # outside the 7-day window
    Subscriber.objects.filter(pk=subs["personal"].pk).update(max_pushes_per_week=1)
    earlier_pushes(subs["personal"], 1)
    fake_sending.unsubscribe("o_wechat_left")  # we did not hear of it: WeChat answers 43004
    Subscriber.objects.filter(pk=subs["unfollowed"].pk).update(is_following=False)

    push = PushFactory(article=article)
    counts = send_now(push)

    assert sent_to(fake_sending) == ["o_ok1", "o_ok2", "o_old_sends"]
    assert reasons(push) == {
        "paused": {"paused"},
        "topic_opt_out": {"optout"},
        "frequency_cap": {"capped", "personal"},
    }
    assert counts == {D.SENT: 3, D.SKIPPED: 4, D.FAILED: 1}  # the unfollowed one was never a recipient
    failed = Delivery.objects.get(push=push, status=D.FAILED)
    assert (failed.reason, failed.errcode, failed.subscriber.nickname) == ("not_following", 43004, "wechat_left")
    assert not Subscriber.objects.get(pk=subs["wechat_left"].pk).is_following
    assert set(Delivery.objects.filter(push=push, status=D.SENT).values_list("msgid", flat=True)) != {None}
    push.refresh_from_db()
    assert (push.status, push.recipients) == (Push.Status.SENT, 8)


def test_the_push_and_the_account_set_the_frequency_cap(fake_sending):
    subs = people(fake_sending, "a", "b")
    earlier_pushes(subs["a"], 2)
    policy(frequency_cap=2)
    push = PushFactory()
    send_now(push)
    assert reasons(push) == {"frequency_cap": {"a"}}
    generous = PushFactory(frequency_cap=10)
    send_now(generous)
    assert reasons(generous) == {}
    assert sent_to(fake_sending) == ["o_a", "o_b", "o_b"]


def test_customer_service_messages_only_inside_the_48_hour_window(fake_sending):
    """The window opens on what the person wrote (their interactions), not on `last_interaction_at`."""
    subs = {
        **people(fake_sending, "recent", "stale"),
        **people(fake_sending, "never", last_interaction_at=NOW - dt.timedelta(hours=1)),
    }
    person_did(subs["recent"], "text", NOW - dt.timedelta(hours=47), fake=fake_sending)
    person_did(subs["stale"], "text", NOW - dt.timedelta(hours=49), fake=fake_sending)
    push = PushFactory(channel=Push.Channel.CUSTOM, template=None, text="Hello https://example.com/x")
    send_now(push)
    assert reasons(push) == {"outside_window": {"stale", "never"}}
    calls = fake_sending.calls(CUSTOM, errcode=0)
    assert [c["body"]["touser"] for c in calls] == ["o_recent"]
    assert "/r/" in calls[0]["body"]["text"]["content"]  # the link is tracked


def test_quiet_hours_defer_the_page_without_dropping_anyone(fake_sending):
    people(fake_sending, "a", "b")
    p = policy(quiet_hours_enabled=True)
    local = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=8)))
    p.quiet_start = (local - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    p.quiet_end = (local + dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    p.save()
    push = PushFactory()
    pushes.push_schedule(push=push, send_at=timezone.now())
    pushes.pushes_claim_due(push_id=push.pk)
    pushes.push_resolve(push=push)
    [(lo, hi)] = pushes.push_pages(push_id=push.pk, size=500)
    outcome = deliveries_send_page(push_id=push.pk, lo=lo, hi=hi)
    assert outcome.defer_until is not None and outcome.defer_until > timezone.now()
    assert outcome.defer_until == quiet_hours_end(p, timezone.now())
    assert statuses(push) == {D.QUEUED: 2}
    assert fake_sending.count(TEMPLATE) == 0
    # After quiet hours the page is sent.
    p.quiet_hours_enabled = False
    p.save()
    Delivery.objects.filter(push=push).update(not_before=None)
    deliveries_send_page(push_id=push.pk, lo=lo, hi=hi)
    assert sent_to(fake_sending) == ["o_a", "o_b"]


def test_quiet_hours_wrap_past_midnight():
    p = SendPolicy(
        quiet_hours_enabled=True, quiet_start=dt.time(22), quiet_end=dt.time(8), quiet_timezone="Asia/Shanghai"
    )
    sh = dt.timezone(dt.timedelta(hours=8))
    assert quiet_hours_end(p, dt.datetime(2026, 3, 1, 23, 30, tzinfo=sh)) == dt.datetime(2026, 3, 2, 8, tzinfo=sh)
    assert quiet_hours_end(p, dt.datetime(2026, 3, 2, 7, 59, tzinfo=sh)) == dt.datetime(2026, 3, 2, 8, tzinfo=sh)
    assert quiet_hours_end(p, dt.datetime(2026, 3, 2, 8, 0, tzinfo=sh)) is None
    assert quiet_hours_end(p, dt.datetime(2026, 3, 2, 21, 59, tzinfo=sh)) is None


def test_the_template_daily_quota_counts_our_own_rows(fake_sending):
    people(fake_sending, "a", "b", "c")
    policy(template_daily_quota=2)
    push = PushFactory()
    send_now(push)
    assert statuses(push) == {D.SENT: 2, D.SKIPPED: 1}
    assert set(reasons(push)) == {"quota_template_daily"}
    assert fake_sending.count(TEMPLATE) == 2


def test_retry_later_requeues_with_a_delay_and_sends_once(fake_sending):
    people(fake_sending, "a", "b")
    fake_sending.configure(faults=[{"path": TEMPLATE, "errcode": 45011, "times": 1}])
    push = PushFactory()
    send_now(push)
    row = Delivery.objects.get(push=push, status=D.QUEUED)
    assert row.not_before > timezone.now() and row.attempts == 1 and row.reason == "wechat:45011"
    # The page runs again (as its re-queued task does) before not_before: nothing is sent; after: sent once.
    [(lo, hi)] = [(row.pk, None)]
    assert deliveries_send_page(push_id=push.pk, lo=lo, hi=hi).claimed == 0
    Delivery.objects.filter(pk=row.pk).update(not_before=timezone.now())
    deliveries_send_page(push_id=push.pk, lo=lo, hi=hi)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (D.SENT, 2)
    assert sent_to(fake_sending) == ["o_a", "o_b"]
    assert Push.objects.get(pk=push.pk).status == Push.Status.SENT


def test_retries_end_in_error_after_the_last_attempt(fake_sending):
    people(fake_sending, "a")
    policy(max_attempts=2)
    fake_sending.configure(faults=[{"path": TEMPLATE, "errcode": 45009}])
    push = PushFactory()
    send_now(push)
    Delivery.objects.filter(push=push).update(not_before=None)
    [(lo, hi)] = [(Delivery.objects.get(push=push).pk, None)]
    deliveries_send_page(push_id=push.pk, lo=lo, hi=hi)
    row = Delivery.objects.get(push=push)
    assert (row.status, row.reason, row.attempts) == (D.ERROR, "retries_exhausted:wechat:45009", 2)
    assert Push.objects.get(pk=push.pk).status == Push.Status.PARTIALLY_FAILED


def test_a_timeout_after_sending_is_unknown_and_never_resent(fake_sending):
    people(fake_sending, "a", "b")
    fake_sending.configure(faults=[{"path": TEMPLATE, "timeout": 2, "times": 1}])
    push = PushFactory()
    send_now(push, threads=1)
    assert statuses(push) == {D.SENT: 1, D.UNKNOWN: 1}
    assert Push.objects.get(pk=push.pk).status == Push.Status.PARTIALLY_FAILED
    lo = Delivery.objects.filter(push=push).order_by("id").first().pk
    assert deliveries_send_page(push_id=push.pk, lo=lo, hi=None).claimed == 0
    assert fake_sending.count(TEMPLATE) == 2  # one answered, one timed out; nothing sent again


def test_running_a_page_twice_sends_nothing_twice(fake_sending):
    people(fake_sending, "a", "b", "c")
    push = PushFactory()
    send_now(push)
    lo = Delivery.objects.filter(push=push).order_by("id").first().pk
    again = deliveries_send_page(push_id=push.pk, lo=lo, hi=None)
    assert again.claimed == 0
    assert sent_to(fake_sending) == ["o_a", "o_b", "o_c"]


def test_cancelling_during_a_send_stops_the_remaining_pages(fake_sending, settings):
    people(fake_sending, "a", "b", "c", "d")
    settings.PUSH_PAGE_SIZES = {"template": 2}
    push = PushFactory()
    pushes.push_schedule(push=push, send_at=timezone.now())
    pushes.pushes_claim_due(push_id=push.pk)
    pushes.push_resolve(push=push)
    first, second = pushes.push_pages(push_id=push.pk, size=pushes.page_size("template"))
    deliveries_send_page(push_id=push.pk, lo=first[0], hi=first[1])
    pushes.push_cancel(push=push)
    deliveries_send_page(push_id=push.pk, lo=second[0], hi=second[1])
    assert sent_to(fake_sending) == ["o_a", "o_b"]
    assert reasons(push) == {"cancelled": {"c", "d"}}
    assert Push.objects.get(pk=push.pk).status == Push.Status.CANCELLED


def test_template_job_finish_marks_delivered_or_failed_by_msgid(fake_sending):
    people(fake_sending, "a", "b", "c")
    push = PushFactory()
    send_now(push)
    rows = list(Delivery.objects.filter(push=push).order_by("id"))
    for row, status in zip(rows, ["success", "failed:user block", "failed: system failed"], strict=True):
        event = SimpleNamespace(msg_id=str(row.msgid), status=status, data={}, pk=None)
        assert delivery_job_finish(event) == 1
    got = [(r.status, r.reason) for r in Delivery.objects.filter(push=push).order_by("id")]
    assert got == [(D.DELIVERED, ""), (D.FAILED, "user_block"), (D.FAILED, "system_failed")]
    # A repeated report changes nothing; a report for a msgid nobody has (yet) matches nothing.
    event = SimpleNamespace(msg_id=str(rows[0].msgid), status="success", data={}, pk=None)
    assert delivery_job_finish(event) == 0
    assert delivery_job_finish(SimpleNamespace(msg_id="999999999", status="success", data={}, pk=None)) == 0


def test_mass_send_by_openid_list_and_its_job_finish_totals(fake_sending):
    people(fake_sending, "a", "b", "c")
    policy(account_type=SendPolicy.AccountType.SUBSCRIPTION)
    push = PushFactory(channel=Push.Channel.MASS_OPENID, template=None, text="Weekly digest")
    send_now(push)
    [call] = fake_sending.calls("/cgi-bin/message/mass/send", errcode=0)
    assert sorted(call["body"]["touser"]) == ["o_a", "o_b", "o_c"] and call["body"]["clientmsgid"]
    batch = MassBatch.objects.get(push=push)
    assert statuses(push) == {D.SENT: 3}
    event = SimpleNamespace(msg_id=str(batch.msg_id), data={"Status": "send success", "TotalCount": "3",
                            "FilterCount": "3", "SentCount": "2", "ErrorCount": "1"})  # fmt: skip
    assert mass_job_finish(event) == 1
    batch.refresh_from_db()
    assert (batch.total_count, batch.sent_count, batch.error_count) == (3, 2, 1)
    # A subscription account has one mass send a day: the next mass push is skipped with the reason.
    second = PushFactory(channel=Push.Channel.MASS_OPENID, template=None, text="Again")
    send_now(second)
    assert set(reasons(second)) == {"quota_mass_daily"}
    assert fake_sending.count("/cgi-bin/message/mass/send") == 1


def test_service_account_four_mass_messages_per_subscriber_per_month(fake_sending):
    subs = people(fake_sending, "a", "b", "c")
    policy(account_type=SendPolicy.AccountType.SERVICE)
    for _ in range(4):
        other = PushFactory(status=Push.Status.SENT, channel=Push.Channel.MASS_OPENID)
        Delivery.objects.create(push=other, subscriber=subs["a"], channel="mass_openid", status=D.SENT,
                                claimed_at=timezone.now(), created_at=timezone.now())  # fmt: skip
    push = PushFactory(channel=Push.Channel.MASS_OPENID, template=None, text="Hi", frequency_cap=100)
    send_now(push)
    assert reasons(push) == {"quota_mass_monthly": {"a"}}
    [call] = fake_sending.calls("/cgi-bin/message/mass/send", errcode=0)
    assert sorted(call["body"]["touser"]) == ["o_b", "o_c"]


def test_the_default_policy_has_quiet_hours_22_to_8_in_shanghai(product_quiet_hours):
    SendPolicy.objects.all().delete()
    p = SendPolicy.current()
    sh = dt.timezone(dt.timedelta(hours=8))
    assert (p.frequency_cap, p.frequency_window_days, p.template_daily_quota) == (4, 7, 100_000)
    assert (p.quiet_hours_enabled, p.quiet_start, p.quiet_end) == (True, dt.time(22), dt.time(8))
    assert quiet_hours_end(p, dt.datetime(2026, 3, 1, 22, 30, tzinfo=sh)) == dt.datetime(2026, 3, 2, 8, tzinfo=sh)
    assert quiet_hours_end(p, dt.datetime(2026, 3, 1, 12, 0, tzinfo=sh)) is None


def test_mass_send_by_tag_is_one_call_with_a_clientmsgid_and_runs_once(fake_sending):
    from accounts.models import Tag

    subs = people(fake_sending, "a", "b", "c")
    token = fake_sending.fetch_token()
    tag_id = fake_sending.api("cgi-bin/tags/create", {"tag": {"name": "vip"}}, access_token=token)["tag"]["id"]
    fake_sending.api(
        "cgi-bin/tags/members/batchtagging", {"openid_list": ["o_a", "o_b"], "tagid": tag_id}, access_token=token
    )
    tag = Tag.objects.create(name="vip", wechat_tag_id=tag_id)
    for name in ("a", "b"):
        subs[name].tags.add(tag)
    push = PushFactory(channel=Push.Channel.MASS_TAG, template=None, segment=None, mass_tag=tag, text="Hello VIPs")
    assert send_now(push) == {D.SENT: 2}
    [call] = fake_sending.calls("/cgi-bin/message/mass/sendall", errcode=0)
    assert call["body"]["filter"] == {"is_to_all": False, "tag_id": tag_id}
    assert call["body"]["clientmsgid"] == f"push{push.pk}-tag" and call["body"]["text"]["content"] == "Hello VIPs"
    lo = Delivery.objects.filter(push=push).order_by("id").first().pk
    assert deliveries_send_page(push_id=push.pk, lo=lo, hi=None).claimed == 0
    assert fake_sending.count("/cgi-bin/message/mass/sendall") == 1
