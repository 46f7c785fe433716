"""API errors are JSON in every mode: with DEBUG on (as under `make run`), /api/ never answers with Django's HTML
debug pages; the admin and the public pages keep Django's."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def crash_api(request, settings, staff_client):
    """`staff_client` on the crash URLs, with DEBUG on and off, answering server errors instead of raising them."""
    settings.DEBUG = request.param
    settings.ROOT_URLCONF = "tests.wechat_crm.crash_urls"
    staff_client.raise_request_exception = False
    return staff_client


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = response.json()
    assert body["message"]
    assert "Traceback" not in response.content.decode() and "<html" not in response.content.decode().lower()
    return body


def test_unknown_api_address_is_a_json_404(crash_api):
    assert assert_json_error(crash_api.get("/api/no-such-thing/"), 404)["message"] == "Not found."
    assert_json_error(crash_api.get("/api/subscribers/999999999/export/"), 404)


def test_an_exception_in_an_api_view_is_a_json_500_without_the_traceback(crash_api):
    assert assert_json_error(crash_api.get("/api/_crash/"), 500)["message"] == "Server error."
    assert_json_error(crash_api.get("/api/_plain_crash/"), 500)


def test_wrong_method_is_a_json_405_with_allow(crash_api):
    response = crash_api.delete("/api/funnel/")
    assert_json_error(response, 405)
    assert "GET" in response["Allow"]


def test_bad_input_is_a_json_400_naming_the_field(crash_api):
    body = assert_json_error(crash_api.get("/api/funnel/", {"from": "not-a-date"}), 400)
    assert "from" in body["extra"]["fields"]


def test_a_request_django_refuses_before_any_view_is_a_json_400(crash_api):
    assert_json_error(crash_api.get("/api/subscribers/", HTTP_HOST="evil.example.com"), 400)


def test_outside_the_api_django_keeps_its_own_pages(settings, client):
    settings.DEBUG = True
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
