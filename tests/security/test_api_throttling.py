"""API throttling per user: the funnel reports and the exports have a tighter rate than the rest; one user's excess
never slows another user down."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import Subscriber
from wechat_crm.settings import base

pytestmark = pytest.mark.django_db

RATES = base.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]  # the product's rates (the test settings raise them)


@pytest.fixture(autouse=True)
def product_rates(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": RATES}


def _limit(scope: str) -> int:
    return int(RATES[scope].split("/")[0])


def _api(django_user_model, name: str, role: str) -> APIClient:
    user = django_user_model.objects.create_user(username=name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    # Ids restart with each test database while the cache (Redis) keeps a minute of history: start from none.
    cache.delete_many([f"throttle_{scope}_{user.pk}" for scope in RATES])
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_funnel_reports_are_throttled_per_user(django_user_model):
    assert _limit("reports") < _limit("user")
    mia, leo = _api(django_user_model, "mia", "marketer"), _api(django_user_model, "leo", "marketer")
    statuses = [mia.get("/api/funnel/").status_code for _ in range(_limit("reports") + 1)]
    assert statuses[:-1] == [200] * _limit("reports") and statuses[-1] == 429
    refused = mia.get("/api/funnel/attribution/?by=channel")
    assert refused.status_code == 429 and refused.json()["message"] and "Retry-After" in refused
    assert mia.get("/api/tags/").status_code == 200  # the user's general rate is not used up
    assert leo.get("/api/funnel/").status_code == 200  # nor anybody else's


def test_exports_are_throttled_tighter_still(django_user_model):
    assert _limit("exports") <= _limit("reports")
    admin = _api(django_user_model, "ada", "admin")
    subscriber = Subscriber.objects.create(openid="oThrottled")
    statuses = [
        admin.get(f"/api/subscribers/{subscriber.pk}/export/").status_code for _ in range(_limit("exports") + 1)
    ]
    assert statuses == [200] * _limit("exports") + [429]
