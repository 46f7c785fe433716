"""Personal-data rights: export everything held about a subscriber, erase one, from the API and the admin; audited."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Interaction, Subscriber, Tag
from content.models import Delivery, Push, Segment
from content.services import segments as segment_services
from tests.accounts.factories import FollowEventFactory, InteractionFactory
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import clicks_drained
from wechat_crm.models import AuditLog

pytestmark = pytest.mark.django_db
OPENID = "oPriv8uMuAJO_M2pxb1Q9zNjWeS6o"


def _user(name: str, *, role: str | None = None, superuser: bool = False) -> User:
    user = User.objects.create_user(name, password="pw-" + name, is_staff=True, is_superuser=superuser)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def _api(user: User) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def person(wechat_callback):
    """A subscriber who followed, wrote twice, has a tag, a preference and a queued delivery of a push."""
    assert wechat_callback.post(build_message("subscribe", openid=OPENID)).status_code == 200
    assert wechat_callback.post(build_message("text", openid=OPENID, Content="我的电话 13800000000")).status_code == 200
    sub = Subscriber.objects.get(openid=OPENID)
    Subscriber.objects.filter(pk=sub.pk).update(nickname="小明", city="上海", unionid="uPriv1")
    sub.tags.add(Tag.objects.create(name="vip"))
    push = Push.objects.create(name="later", status=Push.Status.SENDING)
    Delivery.objects.create(push=push, subscriber=sub, channel="template", created_at=timezone.now())
    sub.refresh_from_db()
    return sub


def test_an_admin_exports_everything_held_about_a_subscriber(person):
    admin = _user("root", superuser=True)
    response = _api(admin).get(f"/api/subscribers/{person.pk}/export/")
    assert response.status_code == 200
    data = response.json()
    assert data["profile"]["openid"] == OPENID
    assert data["profile"]["nickname"] == "小明"
    assert data["tags"] == ["vip"]
    assert [i["kind"] for i in data["interactions"]] == ["subscribe", "text"]
    assert "13800000000" in json.dumps(data, ensure_ascii=False)
    assert [e["kind"] for e in data["follow_events"]] == ["follow"]
    assert len(data["deliveries"]) == 1
    entry = AuditLog.objects.get()
    assert (entry.action, entry.actor, entry.target_id, entry.via) == (
        "subscriber.export",
        admin,
        str(person.pk),
        "api",
    )


def test_erase_clears_the_profile_anonymises_interactions_and_is_audited(person):
    admin = _user("root", superuser=True)
    response = _api(admin).post(f"/api/subscribers/{person.pk}/erase/")
    assert response.status_code == 200
    person.refresh_from_db()
    assert OPENID not in person.openid and person.openid.startswith("erased:")
    assert (person.nickname, person.city, person.unionid, person.is_following) == ("", "", None, False)
    assert not person.tags.exists()
    rows = list(Interaction.objects.filter(subscriber=person).values("content", "raw_xml", "data", "dedupe_key"))
    assert len(rows) == 2
    assert all(r["content"] == "" and r["raw_xml"] == "" and r["data"] == {} for r in rows)
    assert not any(OPENID in r["dedupe_key"] for r in rows)
    # nothing anywhere still holds the openid or the message
    dump = json.dumps(list(Interaction.objects.values()), default=str, ensure_ascii=False)
    assert OPENID not in dump and "13800000000" not in dump
    assert Delivery.objects.get(subscriber=person).status == Delivery.Status.SKIPPED
    entry = AuditLog.objects.get(action="subscriber.erase")
    assert entry.actor == admin and entry.at is not None and entry.details["interactions_anonymised"] == 2


def test_an_erased_subscriber_is_in_no_future_segment(person):
    FollowEventFactory(subscriber=person)
    segment = Segment.objects.create(name="all", rules={"op": "and", "rules": []})
    assert person.pk in set(segment_services.segment_subscribers(rules=segment.rules).values_list("pk", flat=True))
    _api(_user("root", superuser=True)).post(f"/api/subscribers/{person.pk}/erase/")
    assert person.pk not in set(segment_services.segment_subscribers(rules=segment.rules).values_list("pk", flat=True))


def test_a_new_message_after_erasure_is_not_linked_to_the_erased_row(person, wechat_callback):
    _api(_user("root", superuser=True)).post(f"/api/subscribers/{person.pk}/erase/")
    assert wechat_callback.post(build_message("text", openid=OPENID, Content="again")).status_code == 200
    assert Subscriber.objects.get(openid=OPENID).pk != person.pk
    assert not Interaction.objects.filter(subscriber=person).exclude(content="").exists()


@pytest.mark.parametrize("role", [None, "marketer", "operator"])
def test_only_the_admin_role_may_export_or_erase(person, role):
    api = _api(_user("someone", role=role))
    assert api.get(f"/api/subscribers/{person.pk}/export/").status_code == 403
    assert api.post(f"/api/subscribers/{person.pk}/erase/").status_code == 403
    person.refresh_from_db()
    assert person.openid == OPENID
    assert not AuditLog.objects.exists()


def test_the_admin_role_group_may_erase(person):
    assert _api(_user("boss", role="admin")).post(f"/api/subscribers/{person.pk}/erase/").status_code == 200


def test_an_unknown_subscriber_is_a_json_404():
    response = _api(_user("root", superuser=True)).get("/api/subscribers/999999/export/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_the_admin_actions_export_a_json_file_and_erase(client, person):
    admin = _user("root", superuser=True)
    client.force_login(admin)
    url = "/admin/accounts/subscriber/"
    response = client.post(url, {"action": "export_personal_data", "_selected_action": [person.pk]})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert json.loads(response.content)["subscribers"][0]["profile"]["openid"] == OPENID
    selected = {"action": "erase_personal_data", "_selected_action": [person.pk]}

    confirmation = client.post(url, selected)  # first a page that asks

    assert confirmation.status_code == 200
    assert "Erase the personal data of 1 subscriber? This cannot be undone." in confirmation.content.decode()
    assert OPENID in confirmation.content.decode()
    person.refresh_from_db()
    assert person.openid == OPENID

    response = client.post(url, {**selected, "post": "yes"}, follow=True)

    assert response.status_code == 200
    assert "1 subscriber(s) erased" in response.content.decode()
    person.refresh_from_db()
    assert person.openid.startswith("erased:")
    assert list(AuditLog.objects.order_by("id").values_list("action", "via")) == [
        ("subscriber.export", "admin"),
        ("subscriber.erase", "admin"),
    ]


def test_the_admin_actions_refuse_a_marketer(client, person):
    marketer = _user("m", role="marketer")
    marketer.user_permissions.add(*__import__("django.contrib.auth.models", fromlist=["Permission"]).Permission.objects
                                  .filter(codename__in=["view_subscriber", "change_subscriber"]))  # fmt: skip
    client.force_login(marketer)
    client.post(
        "/admin/accounts/subscriber/", {"action": "erase_personal_data", "_selected_action": [person.pk], "post": "yes"}
    )
    person.refresh_from_db()
    assert person.openid == OPENID
    assert not AuditLog.objects.exists()


def test_an_interaction_of_another_subscriber_is_untouched(person):
    other = InteractionFactory(content="keep me")
    _api(_user("root", superuser=True)).post(f"/api/subscribers/{person.pk}/erase/")
    other.refresh_from_db()
    assert other.content == "keep me"


def test_the_erase_confirmation_speaks_chinese_by_default(client, person, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    client.force_login(_user("root", superuser=True))
    selected = {"action": "erase_personal_data", "_selected_action": [person.pk]}

    page = client.post("/admin/accounts/subscriber/", selected)

    assert "确定删除 1 位粉丝的个人数据吗？此操作无法撤销。" in page.content.decode()
    person.refresh_from_db()
    assert person.openid == OPENID


# --- Erase means everywhere --------------------------------------------------------------------------------------


def _text_columns():
    """Every text and JSON column of every table (every installed app's models): new tables are covered."""
    from django.apps import apps
    from django.db import models

    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if field.is_relation:
                continue
            if isinstance(field, models.CharField | models.TextField | models.JSONField):
                yield model, field


def _tables_mentioning(needle: str) -> list[str]:
    from django.db import models
    from django.db.models.functions import Cast

    found = []
    for model, field in _text_columns():
        rows = model._default_manager.annotate(_t=Cast(field.attname, models.TextField()))
        if rows.filter(_t__contains=needle).exists():
            found.append(f"{model._meta.label}.{field.name}")
    return found


@pytest.fixture
def everything(person, client, wechat_callback, settings):
    """The person went through every feature: a channel follow, messages, a tracked-link click, a conversion with
    attributes, an operator reply and a template message (queued), a notification, a journey, score entries, a
    channel touch, deliveries, an operator profile, the admin's change log and an unfinished follower import."""
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.core.cache import cache

    from accounts.models import FollowerSync
    from campaigns.conversions import ConversionInput, conversions_record
    from campaigns.models import Channel, ChannelTouch
    from content import services as content_services
    from content.models import OperatorProfile
    from conversations.models import Journey, JourneyEnrollment, Notification, OutboundMessage, ScoreEntry
    from conversations.services import operator_reply

    channel = Channel.objects.create(name="Poster", scene_str="poster")
    assert wechat_callback.post(build_message("SCAN", openid=OPENID, EventKey="poster")).status_code == 200
    ChannelTouch.objects.create(subscriber=person, channel=channel, kind="scan", at=timezone.now())
    Subscriber.objects.filter(pk=person.pk).update(remark="Ming from Shanghai")
    link = content_services.link_track("https://shop.example.com/x", subscriber_id=person.pk, push_id=None)
    cache.delete_many([f"link_click:{person.pk}:{n}:0" for n in range(1, 50)])  # ids restart with each test database
    assert client.get("/r/" + link.rsplit("/r/", 1)[1]).status_code == 302
    assert clicks_drained() == 1
    result = conversions_record(
        items=[
            ConversionInput(0, "purchase", "order-1", timezone.now(), openid=OPENID,
                            attributes={"buyer": OPENID, "unionid": "uPriv1", "note": "小明 wants it gift-wrapped"})
        ]
    )  # fmt: skip
    assert result.created == 1, result.errors
    person.refresh_from_db()
    operator_reply(subscriber=person, text="你好 小明, your order ships today")
    OutboundMessage.objects.create(subscriber=person, kind="custom", source="journey", text="Reminder for 小明",
                                   payload={"touser": OPENID, "text": {"content": "Reminder"}},
                                   created_at=timezone.now())  # fmt: skip
    journey = Journey.objects.create(name="Welcome")
    Notification.objects.create(subscriber=person, journey=journey, text=f"小明 ({OPENID}) asked for a call",
                                created_at=timezone.now())  # fmt: skip
    JourneyEnrollment.objects.create(journey=journey, subscriber=person, period_key="once",
                                     context={"openid": OPENID, "said": "我的电话 13800000000"},
                                     entered_at=timezone.now(), due_at=timezone.now())  # fmt: skip
    ScoreEntry.objects.create(subscriber=person, points=5, reason=f"text from {OPENID}"[:100], at=timezone.now())
    staff = _user("operator-who-follows", role="operator")
    OperatorProfile.objects.create(user=staff, openid=OPENID)
    FollowerSync.objects.create(next_openid=OPENID)
    LogEntry.objects.create(user=staff, content_type=ContentType.objects.get_for_model(Subscriber),
                            object_id=str(person.pk), object_repr=OPENID, action_flag=CHANGE,
                            change_message="[]")  # fmt: skip
    return person


def test_erase_leaves_the_openid_in_no_text_column_of_any_table(everything, wechat_callback):
    from django.core.cache import cache

    from conversations.models import JourneyEnrollment, OutboundMessage

    before = _tables_mentioning(OPENID)
    expected = {
        "accounts.Interaction.raw_xml",
        "conversations.OutboundMessage.payload",
        "campaigns.Conversion.attributes",
        "conversations.Notification.text",
        "conversations.JourneyEnrollment.context",
    }
    assert expected <= set(before), before
    markers = list(cache.get_many([f"link_click:{everything.pk}:{n}:0" for n in range(1, 50)]))
    assert markers  # the click's repeat marker is cached

    admin = _user("root", superuser=True)
    assert _api(admin).post(f"/api/subscribers/{everything.pk}/erase/").status_code == 200

    assert _tables_mentioning(OPENID) == []
    assert _tables_mentioning("uPriv1") == []
    assert _tables_mentioning("13800000000") == []
    assert _tables_mentioning("小明") == []
    assert _tables_mentioning("Ming from Shanghai") == []
    # Queued and scheduled messages never leave; the journey stops; the cache forgets the clicks.
    assert not OutboundMessage.objects.filter(subscriber=everything, status="queued").exists()
    assert set(OutboundMessage.objects.filter(subscriber=everything).values_list("reason", flat=True)) == {"erased"}
    assert not JourneyEnrollment.objects.filter(subscriber=everything, status="active").exists()
    assert cache.get_many(markers) == {}
    # A late report about a send to them re-creates nobody and stores nothing.
    subscribers, interactions = Subscriber.objects.count(), Interaction.objects.count()
    late = build_message("TEMPLATESENDJOBFINISH", openid=OPENID, MsgID="200163836", Status="success")
    assert wechat_callback.post(late).status_code == 200
    assert (Subscriber.objects.count(), Interaction.objects.count()) == (subscribers, interactions)
    assert _tables_mentioning(OPENID) == []
