"""API errors are JSON in every mode: with DEBUG on (as under `make run`), /api/ never answers with Django's HTML
debug pages; the admin and the public pages keep Django's."""

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def api(request, settings, django_user_model):
    settings.DEBUG = request.param
    settings.ROOT_URLCONF = "tests.wechat_crm.crash_urls"
    client = Client(raise_request_exception=False)
    user = django_user_model.objects.create_superuser(username="errors", password="pw", email="e@example.com")
    client.force_login(user)
    return client


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert body["message"]
    assert "Traceback" not in response.content.decode() and "<html" not in response.content.decode().lower()
    return body


def test_unknown_api_address_is_a_json_404(api):
    assert assert_json_error(api.get("/api/no-such-thing/"), 404)["message"] == "Not found."
    assert_json_error(api.get("/api/subscribers/999999999/export/"), 404)


def test_an_exception_in_an_api_view_is_a_json_500_without_the_traceback(api):
    assert assert_json_error(api.get("/api/_crash/"), 500)["message"] == "Server error."
    assert_json_error(api.get("/api/_plain_crash/"), 500)


def test_wrong_method_is_a_json_405_with_allow(api):
    response = api.delete("/api/funnel/")
    assert_json_error(response, 405)
    assert "GET" in response["Allow"]


def test_bad_input_is_a_json_400_naming_the_field(api):
    body = assert_json_error(api.get("/api/funnel/", {"from": "not-a-date"}), 400)
    assert "from" in body["extra"]["fields"]


def test_a_request_django_refuses_before_any_view_is_a_json_400(api):
    assert_json_error(api.get("/api/subscribers/", HTTP_HOST="evil.example.com"), 400)


def test_outside_the_api_django_keeps_its_own_pages(settings, client):
    settings.DEBUG = True
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
