"""Segments and pushes in the admin and the API: validation, live counts, buttons, progress, test sends, reports."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import FollowEvent, Subscriber, Tag
from content import services
from content.models import Delivery, OperatorProfile, Push, Segment
from content.selectors import push_report, topic_report
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import clicks_drained

from .factories import ArticleFactory, MarketerFactory, StaffFactory, SubscriberFactory, TopicFactory
from .push_factories import PushFactory, SegmentFactory, send_now

pytestmark = pytest.mark.django_db
D = Delivery.Status


def test_segment_api_counts_recipients_and_refuses_bad_rules_with_400(staff_api):
    vip = Tag.objects.create(name="vip")
    for i in range(3):
        s = SubscriberFactory()
        if i < 2:
            s.tags.add(vip)
    resp = staff_api.post("/api/segments/", {"name": "VIP", "rules": [{"type": "tags", "tags": [vip.pk]}]},
                          format="json")  # fmt: skip
    assert resp.status_code == 201, resp.json()
    assert resp.json()["recipients"] == 2
    bad = staff_api.post("/api/segments/", {"name": "x", "rules": [{"type": "tags", "tags": [987654]}]}, format="json")
    assert bad.status_code == 400
    assert "987654" in str(bad.json()["extra"]["fields"]["rules"])
    assert Segment.objects.count() == 1


def test_a_reader_cannot_create_pushes():
    api = APIClient()
    api.force_authenticate(MarketerFactory())
    assert api.post("/api/pushes/", {"name": "x"}, format="json").status_code == 403
    assert api.get("/api/pushes/").status_code == 200


def test_push_api_schedule_cancel_and_illegal_moves(staff_api):
    push = PushFactory(send_at=None)
    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    resp = staff_api.post(f"/api/pushes/{push.pk}/schedule/", {"send_at": later}, format="json")
    assert resp.status_code == 200 and resp.json()["status"] == "scheduled"
    assert staff_api.post(f"/api/pushes/{push.pk}/cancel/").json()["status"] == "cancelled"
    again = staff_api.post(f"/api/pushes/{push.pk}/schedule/", {}, format="json")
    assert again.status_code == 409 and again.json()["message"]
    no_segment = PushFactory(segment=None)
    assert staff_api.post(f"/api/pushes/{no_segment.pk}/schedule/", {}, format="json").status_code == 400
    bad_date = staff_api.post(f"/api/pushes/{no_segment.pk}/schedule/", {"send_at": "soon"}, format="json")
    assert bad_date.status_code == 400


def test_send_a_test_to_me_needs_a_linked_openid_and_reaches_it(staff_api, fake_sending):
    push = PushFactory()
    assert staff_api.post(f"/api/pushes/{push.pk}/test/").status_code == 400
    [openid] = fake_sending.add_users(generate=1)
    OperatorProfile.objects.create(user=staff_api.user, openid=openid)
    resp = staff_api.post(f"/api/pushes/{push.pk}/test/")
    assert resp.status_code == 200 and resp.json()["msgid"]
    [call] = fake_sending.calls("/cgi-bin/message/template/send")
    assert call["body"]["touser"] == openid
    assert call["body"]["data"]["first"]["value"]
    assert Push.objects.get(pk=push.pk).status == Push.Status.DRAFT  # a test changes nothing


def _follow_ups_run() -> None:
    """The follow-ups of every pending interaction, in this process, as the worker runs them."""
    from accounts import follow_ups
    from wechat_crm.wechat import dispatch

    while follow_ups.interactions_process(run=dispatch.follow_ups_run, limit=100).claimed:
        pass


def test_report_counts_clicks_unfollows_and_the_baseline(client, wechat_callback, fake_sending):

    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.set([topic])
    subs = [SubscriberFactory(openid=f"o_rep{i}", nickname=f"r{i}") for i in range(4)]
    fake_sending.add_users([{"openid": s.openid, "subscribe": 1} for s in subs])
    # Baseline: 1 unfollow in the last 30 days among (4 following + 1 who left) -> 1/5/30 per follower per day.
    left = SubscriberFactory(is_following=False)
    FollowEvent.objects.create(subscriber=left, kind="unfollow", at=timezone.now() - dt.timedelta(days=10))
    push = PushFactory(article=article, template__article=article)
    send_now(push)
    # The push went out 49 hours ago (its rows, as they would be by now).
    Delivery.objects.filter(push=push).update(
        claimed_at=timezone.now() - dt.timedelta(hours=49), sent_at=timezone.now() - dt.timedelta(hours=49)
    )
    sent_at = Delivery.objects.filter(push=push).values_list("sent_at", flat=True)[0]
    # r0 clicks twice (two links), r1 once: through the redirect.
    cache.clear()  # no click-window marker of an earlier test's ids (SQLite reuses them)
    for sub, targets in ((subs[0], ["https://a.example/1", "https://a.example/2"]), (subs[1], ["https://a.example/1"])):
        for target in targets:
            url = services.link_track(target, subscriber_id=sub.pk, push_id=push.pk, content_id=article.pk)
            assert client.get("/r/" + url.rsplit("/r/", 1)[1]).status_code == 302
    assert clicks_drained() == 3
    # r2 unfollows 2 hours after the message, r3 48 hours after: through the callback.
    for sub, hours in ((subs[2], 2), (subs[3], 48)):
        at = int((sent_at + dt.timedelta(hours=hours)).timestamp()) + 1
        assert wechat_callback.post(build_message("unsubscribe", openid=sub.openid, create_time=at)).status_code == 200
    _follow_ups_run()
    push.refresh_from_db()
    r = push_report(push=push)
    assert (r["recipients"], r["sent"], r["clicks"], r["unique_clickers"]) == (4, 4, 3, 2)
    assert r["click_through_rate"] == 0.5
    assert (r["unfollows_24h"], r["unfollows_72h"]) == (1, 2)
    assert r["unfollow_rate_24h"] == 0.25
    assert r["baseline_unfollow_rate_24h"] == pytest.approx(1 / 5 / 30, abs=1e-6)
    assert r["baseline_unfollow_rate_72h"] == pytest.approx(3 / 5 / 30, abs=1e-6)
    [by_topic] = [t for t in topic_report() if t["topic"] == topic.slug]
    assert (by_topic["pushes"], by_topic["sent"], by_topic["unfollows_24h"]) == (1, 4, 1)
    assert by_topic["click_through_rate"] == 0.5


def test_the_click_through_rate_counts_only_recipients_reached(client, fake_sending):
    """A click by someone the push did not reach (the operator's test sent to oneself, a forwarded link) is a clicker,
    not a reached clicker: the rate stays within 100%."""
    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.set([topic])
    recipient = SubscriberFactory(openid="o_ctr_recipient")
    fake_sending.add_users([{"openid": recipient.openid, "subscribe": 1}])
    push = PushFactory(article=article, template__article=article)
    send_now(push)
    outsider = SubscriberFactory(openid="o_ctr_outsider")  # followed after the push: not a recipient
    cache.clear()  # no click-window marker of an earlier test's ids (SQLite reuses them)
    for sub in (recipient, outsider):  # through the redirect, counted by the click's follow-up
        url = services.link_track("https://a.example/1", subscriber_id=sub.pk, push_id=push.pk)
        assert client.get("/r/" + url.rsplit("/r/", 1)[1]).status_code == 302
    assert clicks_drained() == 2
    _follow_ups_run()
    push.refresh_from_db()

    r = push_report(push=push)

    assert (r["reached"], r["unique_clickers"], r["reached_clickers"]) == (1, 2, 1)
    assert r["click_through_rate"] == 1.0
    [by_topic] = [t for t in topic_report() if t["topic"] == topic.slug]
    assert by_topic["click_through_rate"] == 1.0


def test_topic_admin_shows_its_pushes_quality(client, fake_sending):
    client.force_login(StaffFactory())
    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.set([topic])
    sub = SubscriberFactory(openid="o_topic1")
    fake_sending.add_users([{"openid": sub.openid, "subscribe": 1}])
    send_now(PushFactory(article=article))
    page = client.get(f"/admin/content/topic/{topic.pk}/change/").content.decode()
    assert "<th>" in page and "0.00%" in page  # one push, one recipient, no clicks yet


def test_admin_pages_show_counts_sample_progress_and_buttons(client, fake_sending):
    staff = StaffFactory()
    client.force_login(staff)
    SubscriberFactory(nickname="Alice")
    SubscriberFactory(nickname="", openid="oSECRETOPENID123456")
    segment = SegmentFactory()
    page = client.get(f"/admin/content/segment/{segment.pk}/change/").content.decode()
    assert "Alice" in page and "oSECRETOPENID123456" not in page and "oSEC…56" in page
    bad = client.post(f"/admin/content/segment/{segment.pk}/change/",
                      {"name": "x", "description": "", "rules": '[{"type": "stage", "in": ["vip"]}]'})  # fmt: skip
    assert bad.status_code == 200 and "rules.rules[0].in" in bad.content.decode()

    push = PushFactory(segment=segment, send_at=timezone.now() + dt.timedelta(hours=3))
    page = client.get(f"/admin/content/push/{push.pk}/change/").content.decode()
    assert "push_progress.js" in page and 'name="_schedule"' in page and 'name="_send_test"' in page
    form = {
        "name": push.name, "channel": "template", "template": push.template_id, "segment": segment.pk, "text": "",
        "send_at_0": timezone.localtime(push.send_at).strftime("%Y-%m-%d"),
        "send_at_1": timezone.localtime(push.send_at).strftime("%H:%M:%S"), "_schedule": "1",
    }  # fmt: skip
    resp = client.post(f"/admin/content/push/{push.pk}/change/", form)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    assert Push.objects.get(pk=push.pk).status == Push.Status.SCHEDULED
    progress = client.get(f"/admin/content/push/{push.pk}/progress/").json()
    assert progress["status"] == "scheduled" and progress["recipients"] == 0
    form.pop("_schedule")
    client.post(f"/admin/content/push/{push.pk}/change/", {**form, "_cancel": "1"})
    assert Push.objects.get(pk=push.pk).status == Push.Status.CANCELLED
    assert Subscriber.objects.count() == 2
