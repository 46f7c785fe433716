"""Fixtures of the roles' tests (test_roles*.py): a client logged in, or an API client authenticated, as a user of
a role."""

import pytest
from rest_framework.test import APIClient

from .roles import make_user


@pytest.fixture
def api_as(django_user_model):
    def build(role: str) -> APIClient:
        client = APIClient()
        user = make_user(django_user_model, role)
        if user is not None:
            client.force_authenticate(user)
        return client

    return build


@pytest.fixture
def admin_as(client, django_user_model):
    def build(role: str):
        user = make_user(django_user_model, role)
        if user is not None:
            client.force_login(user)
        return client

    return build
