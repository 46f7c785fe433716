"""The read API: token authentication, filters, fields, pagination."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.accounts.factories import InteractionFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_client():
    user = get_user_model().objects.create_user(username="analyst", password="x")
    user.groups.add(Group.objects.get(name="marketer"))  # a user in no role reads nothing personal
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize("url", ["/api/subscribers/", "/api/interactions/"])
def test_unauthenticated_calls_get_401(client, url):
    response = client.get(url)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert "message" in response.json()


def test_a_wrong_token_gets_401(client):
    response = client.get("/api/subscribers/", HTTP_AUTHORIZATION="Token not-a-real-key")

    assert response.status_code == 401


def test_an_inactive_users_token_gets_401(client):
    user = get_user_model().objects.create_user(username="gone", password="x", is_active=False)
    user.groups.add(Group.objects.get(name="admin"))
    token = Token.objects.create(user=user)

    response = client.get("/api/subscribers/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 401


def test_a_token_carries_its_users_role(api_client):
    assert api_client.get("/api/subscribers/").status_code == 200  # a marketer reads
    assert api_client.post("/api/tags/", {"name": "vip"}, format="json").status_code == 403  # and does not write


def test_subscribers_list_fields(api_client):
    SubscriberFactory(openid="oApi_1", unionid="uApi_1", source_scene="fair")

    response = api_client.get("/api/subscribers/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert set(row) >= {
        "openid",
        "unionid",
        "is_following",
        "subscribed_at",
        "unsubscribed_at",
        "source_scene",
        "last_interaction_at",
    }
    assert (row["openid"], row["unionid"], row["is_following"], row["source_scene"]) == (
        "oApi_1",
        "uApi_1",
        True,
        "fair",
    )
    assert row["subscribed_at"] is not None
    assert row["unsubscribed_at"] is None


def test_subscribers_filter_by_openid_and_following(api_client):
    SubscriberFactory(openid="oApi_following")
    SubscriberFactory(openid="oApi_left", is_following=False)

    by_openid = api_client.get("/api/subscribers/", {"openid": "oApi_left"}).json()
    following = api_client.get("/api/subscribers/", {"is_following": "true"}).json()
    left = api_client.get("/api/subscribers/", {"is_following": "false"}).json()

    assert [s["openid"] for s in by_openid["results"]] == ["oApi_left"]
    assert [s["openid"] for s in following["results"]] == ["oApi_following"]
    assert [s["openid"] for s in left["results"]] == ["oApi_left"]


def test_interactions_list_fields_and_filters(api_client):
    alice = SubscriberFactory(openid="oApi_alice")
    bob = SubscriberFactory(openid="oApi_bob")
    text = InteractionFactory(subscriber=alice, kind="text", content="hi there")
    InteractionFactory(subscriber=alice, kind="click", msg_id="", event_key="MENU_1", content="")
    InteractionFactory(subscriber=bob, kind="text")

    alices = api_client.get("/api/interactions/", {"openid": "oApi_alice"}).json()
    texts = api_client.get("/api/interactions/", {"kind": "text"}).json()
    alices_texts = api_client.get("/api/interactions/", {"openid": "oApi_alice", "kind": "text"}).json()

    assert alices["count"] == 2
    assert texts["count"] == 2
    assert alices_texts["count"] == 1
    row = alices_texts["results"][0]
    assert set(row) == {"id", "openid", "kind", "event_key", "content", "msg_id", "created_at", "received_at"}
    assert (row["id"], row["openid"], row["kind"], row["content"], row["msg_id"]) == (
        text.pk,
        "oApi_alice",
        "text",
        "hi there",
        text.msg_id,
    )


def test_interactions_are_paginated(api_client, settings):
    subscriber = SubscriberFactory()
    InteractionFactory.create_batch(55, subscriber=subscriber)

    first = api_client.get("/api/interactions/").json()
    second = api_client.get(first["next"]).json()

    assert first["count"] == 55
    assert len(first["results"]) == 50
    assert len(second["results"]) == 5


def test_interactions_list_does_not_query_per_row(api_client, django_assert_max_num_queries):
    InteractionFactory.create_batch(20)

    with django_assert_max_num_queries(4):  # auth token, count, page (subscribers joined)
        api_client.get("/api/interactions/")


def test_stored_callback_messages_appear_in_the_api(api_client, wechat_callback):
    from tests.fixtures.wechat_payloads import build_message

    wechat_callback.post(build_message("text", openid="oApi_wechat", Content="from wechat"))
    wechat_callback.post(build_message("CLICK", openid="oApi_wechat", EventKey="MENU_HELP"))

    results = api_client.get("/api/interactions/", {"openid": "oApi_wechat"}).json()["results"]

    assert {(r["kind"], r["content"], r["event_key"]) for r in results} == {
        ("text", "from wechat", ""),
        ("click", "", "MENU_HELP"),
    }
