"""The admin and the API call the same service for each action: driving one action both ways leaves the same rows,
the same audit fields and the same enqueued work."""

from __future__ import annotations

import datetime as dt

import pytest
from celery.signals import before_task_publish
from django.utils import timezone

from content.models import Article, Delivery, OperatorProfile, Push
from tests.helpers import wechat_shared_state_clear
from wechat_crm.wechat.client import get_client

from .factories import MessageTemplateFactory, SubscriberFactory, TopicFactory
from .push_factories import PushFactory, SegmentFactory, policy

pytestmark = pytest.mark.django_db

SEND_AT = dt.datetime(2031, 5, 4, 9, 30, tzinfo=dt.UTC)
PUSH_ROW = ("status", "send_at", "created_by_id", "name", "channel", "template_id", "segment_id", "started_at")
ARTICLE_ROW = ("status", "title", "digest", "author", "body", "body_html", "created_by_id", "published_at")


@pytest.fixture
def published():
    """The Celery tasks published, as (task name, args, countdown in whole minutes). Services enqueue after commit:
    run the actions under django_capture_on_commit_callbacks(execute=True)."""
    sent: list[tuple[str, tuple, int | None]] = []

    def record(sender=None, body=None, headers=None, **kwargs):
        eta = (headers or {}).get("eta")
        minutes = None
        if eta:
            minutes = round((dt.datetime.fromisoformat(eta) - timezone.now()).total_seconds() / 60)
        sent.append((sender, tuple(body[0]), minutes))

    before_task_publish.connect(record, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(record)


def _row(model, pk: int, fields: tuple[str, ...]) -> dict:
    return model.objects.filter(pk=pk).values(*fields).get()


def _push_form(push: Push, **extra) -> dict:
    local = timezone.localtime(push.send_at) if push.send_at else None
    return {
        "name": push.name,
        "channel": push.channel,
        "template": push.template_id or "",
        "segment": push.segment_id or "",
        "text": push.text,
        "send_at_0": local.strftime("%Y-%m-%d") if local else "",
        "send_at_1": local.strftime("%H:%M:%S") if local else "",
        **extra,
    }


def test_scheduling_a_push_in_the_admin_and_in_the_api_gives_the_same_rows_and_tasks(
    staff_client, staff_api, published, django_capture_on_commit_callbacks
):
    by_admin, by_api = PushFactory(send_at=SEND_AT), PushFactory(send_at=SEND_AT)

    with django_capture_on_commit_callbacks(execute=True):
        resp = staff_client.post(f"/admin/content/push/{by_admin.pk}/change/", _push_form(by_admin, _schedule="1"))
    assert resp.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.post(f"/api/pushes/{by_api.pk}/schedule/", {}, format="json").status_code == 200

    admin_row, api_row = _row(Push, by_admin.pk, PUSH_ROW), _row(Push, by_api.pk, PUSH_ROW)
    assert admin_row["status"] == Push.Status.SCHEDULED and admin_row["send_at"] == SEND_AT
    assert {**admin_row, "name": "", "template_id": 0, "segment_id": 0} == {
        **api_row,
        "name": "",
        "template_id": 0,
        "segment_id": 0,
    }
    dispatches = [
        (name, args[0], minutes) for name, args, minutes in published if name == "content.tasks.push_dispatch"
    ]
    [(_, admin_id, admin_wait), (_, api_id, api_wait)] = dispatches
    assert (admin_id, api_id) == (by_admin.pk, by_api.pk)
    assert abs(admin_wait - api_wait) <= 1 and admin_wait > 0  # both wait until send_at


def test_scheduling_an_already_scheduled_push_reschedules_it_both_ways(
    staff_client, staff_api, published, django_capture_on_commit_callbacks
):
    by_admin, by_api = PushFactory(send_at=SEND_AT), PushFactory(send_at=SEND_AT)
    for push in (by_admin, by_api):
        staff_api.post(f"/api/pushes/{push.pk}/schedule/", {}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        resp = staff_client.post(
            "/admin/content/push/", {"action": "schedule_selected", "_selected_action": [by_admin.pk]}, follow=True
        )
    assert "1 pushes scheduled." in resp.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_api.post(f"/api/pushes/{by_api.pk}/schedule/", {}, format="json").status_code == 200

    assert _row(Push, by_admin.pk, ("status", "send_at")) == _row(Push, by_api.pk, ("status", "send_at"))
    assert [args[0] for name, args, _ in published if name == "content.tasks.push_dispatch"] == [
        by_admin.pk,
        by_api.pk,
    ]


def test_creating_a_push_in_the_admin_and_in_the_api_gives_the_same_draft(staff_client, staff_api, staff_user):
    template, segment = MessageTemplateFactory(), SegmentFactory()
    values = {"name": "Spring", "channel": "template", "template": template.pk, "segment": segment.pk, "text": ""}

    resp = staff_client.post("/admin/content/push/add/", {**values, "send_at_0": "", "send_at_1": ""})
    assert resp.status_code == 302, resp.content.decode()[:2000]
    created = staff_api.post("/api/pushes/", values, format="json")
    assert created.status_code == 201, created.json()

    admin_push, api_push = Push.objects.order_by("id")
    assert _row(Push, admin_push.pk, PUSH_ROW) == _row(Push, api_push.pk, PUSH_ROW)
    assert admin_push.created_by == staff_user and admin_push.status == Push.Status.DRAFT


def test_cancelling_a_push_in_the_admin_and_in_the_api_skips_its_queued_deliveries(staff_client, staff_api):
    pushes = [PushFactory(send_at=SEND_AT), PushFactory(send_at=SEND_AT)]
    subscriber = SubscriberFactory()
    for push in pushes:
        Delivery.objects.create(push=push, subscriber=subscriber, channel=push.channel, created_at=timezone.now())

    staff_client.post(f"/admin/content/push/{pushes[0].pk}/change/", _push_form(pushes[0], _cancel="1"))
    assert staff_api.post(f"/api/pushes/{pushes[1].pk}/cancel/").status_code == 200

    rows = [_row(Push, p.pk, ("status", "finished_at")) for p in pushes]
    assert [r["status"] for r in rows] == [Push.Status.CANCELLED] * 2 and all(r["finished_at"] for r in rows)
    assert (
        list(Delivery.objects.order_by("push_id").values_list("status", "reason"))
        == [(Delivery.Status.SKIPPED, "cancelled")] * 2
    )


def test_a_test_send_reaches_the_operator_both_ways(staff_client, staff_api, staff_user, fake_wechat, settings):
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    get_client().tokens.clear()
    policy()
    [openid] = fake_wechat.add_users(generate=1)
    OperatorProfile.objects.create(user=staff_user, openid=openid)
    by_admin, by_api = PushFactory(), PushFactory()

    staff_client.post(f"/admin/content/push/{by_admin.pk}/change/", _push_form(by_admin, _send_test="1"))
    assert staff_api.post(f"/api/pushes/{by_api.pk}/test/").status_code == 200

    calls = fake_wechat.calls("/cgi-bin/message/template/send")
    assert [c["body"]["touser"] for c in calls] == [openid, openid]
    assert calls[0]["body"]["data"] == calls[1]["body"]["data"]
    assert set(Push.objects.values_list("status", flat=True)) == {Push.Status.DRAFT}


def test_creating_and_publishing_an_article_in_the_admin_and_in_the_api_gives_the_same_rows(
    staff_client, staff_api, staff_user
):
    topic = TopicFactory()
    values = {"title": "Spring tea", "digest": "Fresh", "author": "Editor", "body": "# Tea\n\n**Green**"}

    resp = staff_client.post("/admin/content/article/add/", {**values, "slug": "", "topics": [topic.pk]})
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert staff_api.post("/api/contents/", {**values, "topics": [topic.slug]}, format="json").status_code == 201

    admin_article, api_article = Article.objects.order_by("id")
    assert _row(Article, admin_article.pk, ARTICLE_ROW) == _row(Article, api_article.pk, ARTICLE_ROW)
    assert admin_article.created_by == staff_user and "<strong>Green</strong>" in admin_article.body_html
    assert admin_article.slug and api_article.slug and admin_article.slug != api_article.slug
    assert list(admin_article.topics.all()) == list(api_article.topics.all()) == [topic]

    staff_client.post("/admin/content/article/", {"action": "publish_selected", "_selected_action": [admin_article.pk]})
    assert staff_api.post(f"/api/contents/{api_article.pk}/publish/").status_code == 200
    rows = [_row(Article, a.pk, ("status",)) for a in (admin_article, api_article)]
    assert rows == [{"status": Article.Status.PUBLISHED}] * 2


def test_editing_an_article_in_the_admin_and_in_the_api_changes_the_same_fields(staff_client, staff_api):
    by_admin, by_api = (
        staff_api.post("/api/contents/", {"title": "Old", "body": "old"}, format="json").json()["id"] for _ in range(2)
    )
    staff_client.post(
        f"/admin/content/article/{by_admin}/change/",
        {"title": "New", "slug": Article.objects.get(pk=by_admin).slug, "digest": "", "author": "", "body": "*new*"},
    )
    staff_api.patch(f"/api/contents/{by_api}/", {"title": "New", "body": "*new*"}, format="json")

    fields = ("title", "body", "body_html", "status")
    assert _row(Article, by_admin, fields) == _row(Article, by_api, fields)
    assert Article.objects.get(pk=by_admin).body_html == "<p><em>new</em></p>"
