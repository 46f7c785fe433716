"""Admin logins are throttled by django-axes: after AXES_FAILURE_LIMIT failures the username and address are locked
out, even with the right password; other users are not."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def throttled(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    User.objects.create_user("ops", password="right-password-1", is_staff=True)
    User.objects.create_user("other", password="right-password-2", is_staff=True)


def _login(client, username: str, password: str):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7")


def test_three_failures_lock_the_account_out_even_with_the_right_password(client, throttled):
    for _ in range(2):
        assert _login(client, "ops", "wrong").status_code == 200  # the form again, with an error
    assert _login(client, "ops", "wrong").status_code == 429
    response = _login(client, "ops", "right-password-1")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_does_not_lock_other_users_out(client, throttled):
    for _ in range(3):
        _login(client, "ops", "wrong")
    response = _login(client, "other", "right-password-2")
    assert response.status_code == 302
    assert client.session["_auth_user_id"]


def test_a_success_before_the_limit_resets_the_count(client, throttled):
    for _ in range(2):
        _login(client, "ops", "wrong")
    assert _login(client, "ops", "right-password-1").status_code == 302
    client.logout()
    for _ in range(2):
        assert _login(client, "ops", "wrong").status_code == 200


def test_code_that_authenticates_without_a_request_still_works(client, throttled):
    assert client.login(username="ops", password="right-password-1")


# --- Behind the reverse proxy: the client's address comes from X-Forwarded-For -------------------------------------

PROXY = "10.0.0.2"  # every request reaches the app from the proxy


def _through_proxy(client, username: str, password: str, forwarded_for: str):
    return client.post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for
    )


def test_behind_the_proxy_an_attacker_locks_only_their_own_address_out(client, throttled, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(3):
        _through_proxy(client, "ops", "wrong", "198.51.100.66")
    assert _through_proxy(client, "ops", "right-password-1", "198.51.100.66").status_code == 429
    # Posing as the operator's address in the header does not help: our proxy appends the address it saw.
    assert _through_proxy(client, "ops", "wrong", "203.0.113.7, 198.51.100.66").status_code == 429
    client.cookies.clear()
    assert _through_proxy(client, "ops", "right-password-1", "203.0.113.7").status_code == 302


def test_without_a_trusted_proxy_the_header_is_ignored(client, throttled, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    for n in range(3):
        _through_proxy(client, "ops", "wrong", f"198.51.100.{n}")  # a different forged address each time
    assert _through_proxy(client, "ops", "right-password-1", "198.51.100.99").status_code == 429
