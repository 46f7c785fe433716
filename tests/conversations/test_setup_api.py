"""The API manages what the admin manages in conversations, tags and topics: auto-replies, menus (validate,
publish), journeys with their steps and report, score rules; tags renamed and deleted (on WeChat too when linked),
topics deleted. Writes go through the services; admins write, everyone with a role reads; bad input is a JSON 4xx
naming the field."""

import pytest

from accounts.models import Subscriber, Tag
from content.models import Topic
from conversations.models import AutoReplyRule, Journey, JourneyStep, Menu, ScoreRule
from tests.fixtures.wechat_payloads import build_message
from tests.helpers import client_as
from wechat_crm.wechat.client import get_client

pytestmark = pytest.mark.django_db


MENU = [
    {"type": "click", "name": "News", "key": "NEWS"},
    {"name": "More", "sub_button": [{"type": "view", "name": "Site", "url": "https://example.com/"}]},
]


def fields(response) -> dict:
    assert 400 <= response.status_code < 500, response.content
    return response.json()["extra"]["fields"]


def test_an_auto_reply_created_through_the_api_answers_on_the_callback(staff_api, poster):
    response = staff_api.post(
        "/api/auto-replies/",
        {"name": "Hours", "trigger": "text_contains", "pattern": "hours", "reply_text": "We open at 9."},
        format="json",
    )
    assert response.status_code == 201, response.content
    rule_id = response.json()["id"]
    reply = poster.post(build_message("text", Content="opening hours?"), mode="plain")
    assert "We open at 9." in reply.content.decode()

    assert staff_api.patch(f"/api/auto-replies/{rule_id}/", {"priority": 5}, format="json").json()["priority"] == 5
    assert staff_api.get("/api/auto-replies/?trigger=text_contains").json()["count"] == 1
    assert staff_api.delete(f"/api/auto-replies/{rule_id}/").status_code == 204
    assert not AutoReplyRule.objects.filter(pk=rule_id).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "trigger": "text_regex", "pattern": "(", "reply_text": "y"}, "pattern"),
        ({"name": "x", "trigger": "text_exact", "pattern": "a"}, "reply_text"),
        ({"name": "x", "trigger": "nope", "pattern": "a", "reply_text": "y"}, "trigger"),
        (
            {"name": "x", "trigger": "text_exact", "pattern": "a", "reply_text": "y", "active_from": "09:00"},
            "active_until",
        ),
        ({"name": "x", "trigger": "text_exact", "pattern": "a", "reply_text": "y", "article": 999999}, "article"),
    ],
)
def test_bad_auto_replies_are_a_400_naming_the_field(staff_api, payload, field):
    assert field in fields(staff_api.post("/api/auto-replies/", payload, format="json"))
    assert not AutoReplyRule.objects.exists()


def test_menus_are_validated_saved_and_published_to_wechat(staff_api, fake_with_token):
    checked = staff_api.post("/api/menus/validate/", {"buttons": MENU}, format="json")
    assert checked.status_code == 200 and checked.json()["buttons"][0] == MENU[0]
    too_long = [{"type": "click", "name": "一二三四五六", "key": "K"}]
    assert "buttons" in fields(staff_api.post("/api/menus/validate/", {"buttons": too_long}, format="json"))
    assert "buttons" in fields(staff_api.post("/api/menus/", {"name": "Bad", "buttons": too_long}, format="json"))
    assert "buttons" in fields(staff_api.post("/api/menus/", {"name": "Bad", "buttons": "x"}, format="json"))

    menu_id = staff_api.post("/api/menus/", {"name": "Main", "buttons": MENU}, format="json").json()["id"]
    published = staff_api.post(f"/api/menus/{menu_id}/publish/")
    assert published.status_code == 200, published.content
    assert published.json()["published_at"] and published.json()["publish_error"] == ""
    assert fake_with_token.menu()["button"][0]["key"] == "NEWS"

    fake_with_token.configure(faults=[{"path": "/cgi-bin/menu/create", "errcode": 40018, "times": 1}])
    refused = staff_api.post(f"/api/menus/{menu_id}/publish/")
    assert refused.status_code == 400 and "40018" in refused.json()["message"]
    assert Menu.objects.get(pk=menu_id).publish_error.startswith("40018")


def test_journeys_with_their_steps_and_report(staff_api):
    tag = Tag.objects.create(name="welcomed")
    journey = staff_api.post("/api/journeys/", {"name": "Welcome", "trigger": "follow"}, format="json")
    assert journey.status_code == 201, journey.content
    jid = journey.json()["id"]
    step = staff_api.post(
        "/api/journey-steps/",
        {"journey": jid, "position": 0, "wait": "00:10:00", "action": "message", "text": "Hello!"},
        format="json",
    )
    assert step.status_code == 201, step.content
    staff_api.post(
        "/api/journey-steps/", {"journey": jid, "position": 1, "action": "add_tag", "tag": tag.pk}, format="json"
    )
    body = staff_api.get(f"/api/journeys/{jid}/").json()
    assert [s["action"] for s in body["steps"]] == ["message", "add_tag"]
    assert body["steps"][0]["wait"] == "00:10:00"
    assert len(staff_api.get(f"/api/journey-steps/?journey={jid}").json()["results"]) == 2
    report = staff_api.get(f"/api/journeys/{jid}/report/").json()
    assert report["entered"] == 0 and [s["position"] for s in report["steps"]] == [0, 1]

    assert "topic" in fields(staff_api.post("/api/journeys/", {"name": "T", "trigger": "topic_click"}, format="json"))
    assert "tag" in fields(staff_api.post("/api/journey-steps/", {"journey": jid, "action": "add_tag"}, format="json"))
    assert "text" in fields(staff_api.post("/api/journey-steps/", {"journey": jid, "action": "message"}, format="json"))
    assert "wait" in fields(
        staff_api.post(
            "/api/journey-steps/", {"journey": jid, "action": "message", "text": "x", "wait": "soon"}, format="json"
        )
    )
    # A tag a step uses cannot be deleted: 409, nothing deleted.
    in_use = staff_api.delete(f"/api/tags/{tag.pk}/")
    assert in_use.status_code == 409 and in_use.json()["message"]
    assert Tag.objects.filter(pk=tag.pk).exists()
    assert staff_api.delete(f"/api/journeys/{jid}/").status_code == 204
    assert not JourneyStep.objects.exists()


def test_score_rules(staff_api):
    rule = staff_api.post("/api/score-rules/", {"kind": "text", "points": 2}, format="json")
    assert rule.status_code == 201
    assert staff_api.patch(f"/api/score-rules/{rule.json()['id']}/", {"points": 3}, format="json").json()["points"] == 3
    assert "kind" in fields(staff_api.post("/api/score-rules/", {"kind": "text", "points": 1}, format="json"))
    assert "points" in fields(staff_api.post("/api/score-rules/", {"kind": "click", "points": "many"}, format="json"))
    assert ScoreRule.objects.get().points == 3


def test_tags_are_renamed_and_deleted_on_wechat_too_when_linked(staff_api, fake_with_token):
    wechat = get_client()
    tag = Tag.objects.create(name="old name", wechat_tag_id=int(wechat.tag.create("old name")["id"]))
    local = Tag.objects.create(name="local")
    renamed = staff_api.patch(f"/api/tags/{tag.pk}/", {"name": "new name"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "new name"
    assert [t["name"] for t in wechat.tag.get() if t["id"] == tag.wechat_tag_id] == ["new name"]
    assert "name" in fields(staff_api.patch(f"/api/tags/{local.pk}/", {"name": "new name"}, format="json"))
    assert "name" in fields(staff_api.patch(f"/api/tags/{local.pk}/", {"name": "长" * 11}, format="json"))
    assert staff_api.delete(f"/api/tags/{tag.pk}/").status_code == 204
    assert all(t["id"] != tag.wechat_tag_id for t in wechat.tag.get())
    assert staff_api.delete(f"/api/tags/{local.pk}/").status_code == 204
    assert not Tag.objects.exists()


def test_topics_are_deleted_with_the_preferences_that_name_them(staff_api):
    topic = Topic.objects.create(name="Travel", slug="travel")
    sub = Subscriber.objects.create(openid="o_topic_del")
    sub.topics_preferred.add(topic)
    assert staff_api.delete(f"/api/topics/{topic.pk}/").status_code == 204
    assert not sub.topics_preferred.exists()
    used = Topic.objects.create(name="Used", slug="used")
    journey = Journey.objects.create(name="J", trigger="follow")
    JourneyStep.objects.create(journey=journey, action="message", text="x", condition="prefers_topic",
                               condition_topic=used)  # fmt: skip
    assert staff_api.delete(f"/api/topics/{used.pk}/").status_code == 409


ENDPOINTS = [
    ("/api/auto-replies/", {"name": "x", "trigger": "follow", "reply_text": "hi"}),
    ("/api/menus/", {"name": "m", "buttons": MENU}),
    ("/api/journeys/", {"name": "j", "trigger": "follow"}),
    ("/api/score-rules/", {"kind": "view", "points": 1}),
    ("/api/tags/", {"name": "t"}),
]


@pytest.mark.parametrize(("url", "payload"), ENDPOINTS, ids=[u for u, _p in ENDPOINTS])
@pytest.mark.parametrize(
    ("role", "read", "write"),
    [("marketer", 200, 403), ("operator", 200, 403), ("admin", 200, 201), ("anonymous", 401, 401)],
)
def test_roles(django_user_model, url, payload, role, read, write):
    api = client_as(django_user_model, role)
    assert api.get(url).status_code == read
    assert api.post(url, payload, format="json").status_code == write


@pytest.mark.parametrize(("role", "write"), [("marketer", 403), ("operator", 204), ("admin", 204)])
def test_operators_delete_topics(django_user_model, role, write):
    topic = Topic.objects.create(name="Gone", slug="gone")
    assert client_as(django_user_model, role).delete(f"/api/topics/{topic.pk}/").status_code == write


@pytest.mark.parametrize("name", ["", "   ", "长" * 11, "vip"])
def test_a_bad_new_tag_is_a_400_naming_the_field(staff_api, name):
    Tag.objects.create(name="vip")
    assert "name" in fields(staff_api.post("/api/tags/", {"name": name}, format="json"))
    assert Tag.objects.count() == 1
