"""POST /api/conversions/: one event or a batch, idempotent, invalid items reported one by one."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from accounts.models import Subscriber
from campaigns.models import Conversion
from tests.campaigns.factories import ConversionTypeFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


AT = "2026-03-05T10:00:00+08:00"


@pytest.fixture
def shop_api(django_user_model):
    user = django_user_model.objects.create_user(username="shop", password="pw")
    user.groups.add(Group.objects.get(name="admin"))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def subs():
    return [
        Subscriber.objects.create(openid="o_one", unionid="u_one", followed_at=datetime(2026, 3, 1, tzinfo=UTC)),
        Subscriber.objects.create(openid="o_two", followed_at=datetime(2026, 3, 1, tzinfo=UTC)),
    ]


def test_single_event_is_stored_and_converts_the_subscriber(shop_api, subs):
    body = {"openid": "o_one", "type": "purchase", "external_id": "A-1", "value": "12.50", "occurred_at": AT}
    response = shop_api.post("/api/conversions/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"received": 1, "created": 1, "duplicates": 0, "errors": []}
    conversion = Conversion.objects.get()
    assert str(conversion.value) == "12.50" and conversion.currency == "CNY"
    subs[0].refresh_from_db()
    assert subs[0].stage == "converted" and subs[0].converted_at == datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def test_same_type_and_external_id_twice_is_stored_once(shop_api, subs):
    body = {"openid": "o_one", "type": "purchase", "external_id": "A-1", "occurred_at": AT}
    assert shop_api.post("/api/conversions/", body, format="json").status_code == 201
    again = shop_api.post("/api/conversions/", {"events": [body, body]}, format="json")
    assert again.status_code == 200
    assert again.json()["created"] == 0 and again.json()["duplicates"] == 2
    assert Conversion.objects.count() == 1
    # another type with the same external_id is another conversion
    other = shop_api.post("/api/conversions/", {**body, "type": "register"}, format="json")
    assert other.status_code == 201 and Conversion.objects.count() == 2


def test_batch_reports_invalid_items_by_index_and_keeps_the_valid_ones(shop_api, subs):
    ConversionTypeFactory(slug="trial", name="Trial")
    events = [
        {"openid": "o_one", "type": "purchase", "external_id": "1", "occurred_at": AT},
        {"openid": "o_nobody", "type": "purchase", "external_id": "2", "occurred_at": AT},
        {"unionid": "u_one", "type": "trial", "external_id": "3", "occurred_at": AT},
        {"openid": "o_two", "type": "no-such-type", "external_id": "4", "occurred_at": AT},
        {"openid": "o_two", "type": "purchase", "external_id": "5", "occurred_at": "yesterday"},
        {"type": "purchase", "external_id": "6", "occurred_at": AT},
        "not an object",
        {"openid": "o_two", "type": "download", "external_id": "7", "occurred_at": AT, "value": "-1"},
    ]
    response = shop_api.post("/api/conversions/", {"events": events}, format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["created"] == 2 and body["received"] == 8
    assert [e["index"] for e in body["errors"]] == [1, 3, 4, 5, 6, 7]
    messages = {e["index"]: e["message"] for e in body["errors"]}
    assert "subscriber" in messages[1] and "no-such-type" in messages[3] and "occurred_at" in messages[4]
    assert "openid" in messages[5] and "value" in messages[7]
    assert sorted(Conversion.objects.values_list("external_id", flat=True)) == ["1", "3"]


def test_more_than_1000_events_are_refused_with_a_message(shop_api, subs):
    events = [{"openid": "o_one", "type": "purchase", "external_id": str(i), "occurred_at": AT} for i in range(1001)]
    response = shop_api.post("/api/conversions/", {"events": events}, format="json")
    assert response.status_code == 413
    assert "1000" in response.json()["message"] and Conversion.objects.count() == 0


def test_a_full_batch_of_1000_takes_a_handful_of_queries(shop_api, subs, django_assert_max_num_queries):
    events = [
        {"openid": "o_one" if i % 2 else "o_two", "type": "purchase", "external_id": str(i), "occurred_at": AT}
        for i in range(1000)
    ]
    with django_assert_max_num_queries(15):
        response = shop_api.post("/api/conversions/", {"events": events}, format="json")
    assert response.status_code == 201 and Conversion.objects.count() == 1000


def test_garbage_body_is_a_json_400(shop_api):
    response = shop_api.post("/api/conversions/", "[]", content_type="application/json")
    assert response.status_code == 400 and response.json()["message"]
