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
