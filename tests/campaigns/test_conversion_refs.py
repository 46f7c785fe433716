"""POST /api/conversions/ with the `ref` a tracked link gave the shop (accounts.webauth.ref_make) instead of an
openid: a valid ref names the person; a changed or expired ref refuses that event only, naming the problem."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from freezegun import freeze_time
from rest_framework.test import APIClient

from accounts.models import Subscriber
from accounts.webauth import ref_make
from campaigns.models import Conversion

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

AT = "2026-03-05T10:00:00+08:00"


@pytest.fixture
def shop_api(django_user_model):
    user = django_user_model.objects.create_user(username="shop", password="pw")
    user.groups.add(Group.objects.get(name="integration"))
    client = APIClient()
    client.force_authenticate(user)
    return client


def _event(ref: str, external_id: str) -> dict:
    return {"ref": ref, "type": "purchase", "external_id": external_id, "value": "10.00", "occurred_at": AT}


def test_a_ref_credits_the_person_it_names(shop_api):
    one = Subscriber.objects.create(openid="o_ref_one", is_following=True)
    two = Subscriber.objects.create(openid="o_ref_two", is_following=True)

    response = shop_api.post(
        "/api/conversions/", {"events": [_event(ref_make(subscriber_id=two.pk), "A-1")]}, format="json"
    )

    assert response.status_code == 201, response.content
    assert Conversion.objects.get().subscriber_id == two.pk
    two.refresh_from_db()
    assert two.stage == "converted"
    assert not Conversion.objects.filter(subscriber=one).exists()


def test_a_changed_or_expired_ref_is_refused_and_the_valid_events_are_kept(shop_api, settings):
    settings.SHOP_REF_MAX_AGE_DAYS = 30
    person = Subscriber.objects.create(openid="o_ref_person", is_following=True)
    other = Subscriber.objects.create(openid="o_ref_other", is_following=True)
    with freeze_time(datetime(2026, 1, 1, tzinfo=UTC)):
        old = ref_make(subscriber_id=person.pk)
    good = ref_make(subscriber_id=person.pk)
    forged = good.replace(good.split(".")[0], "Z", 1)  # another id, the same signature

    response = shop_api.post(
        "/api/conversions/",
        {"events": [_event(good, "B-1"), _event(old, "B-2"), _event(forged, "B-3"), _event("", "B-4")]},
        format="json",
    )

    assert response.status_code == 422
    body = response.json()
    assert body["created"] == 1 and [e["index"] for e in body["errors"]] == [1, 2, 3]
    expired, changed, missing = body["errors"]
    assert "expired" in expired["message"] and "ref" in expired["fields"]
    assert "not one of ours" in changed["message"]
    assert "openid, unionid or ref" in missing["message"]
    assert list(Conversion.objects.values_list("subscriber_id", "external_id")) == [(person.pk, "B-1")]
    assert other.pk != person.pk


def test_a_ref_of_an_erased_person_names_nobody(shop_api):
    person = Subscriber.objects.create(openid="o_ref_gone", is_following=True)
    ref = ref_make(subscriber_id=person.pk)
    person.delete()

    response = shop_api.post("/api/conversions/", _event(ref, "C-1"), format="json")

    assert response.status_code == 422
    assert "no longer a subscriber" in response.json()["errors"][0]["message"]
    assert not Conversion.objects.exists()
