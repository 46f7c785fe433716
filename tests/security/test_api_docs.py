"""/api/docs/ and /api/schema/ are for staff, and the docs page loads Swagger UI from our own static files (no CDN:
it works offline and from China)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_the_public_gets_neither_the_docs_nor_the_schema(client):
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and "/admin/login/" in docs["Location"]
    assert client.get("/api/schema/").status_code in (401, 403)


def test_a_non_staff_user_gets_neither(client, django_user_model):
    user = django_user_model.objects.create_user(username="shop", password="pw")
    user.groups.add(Group.objects.get(name="integration"))
    client.force_login(user)
    assert client.get("/api/docs/").status_code == 302
    assert client.get("/api/schema/").status_code == 403


def test_staff_get_the_docs_with_local_assets_only(client, django_user_model):
    user = django_user_model.objects.create_user(username="mia", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    client.force_login(user)

    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-dist" in a for a in assets), assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        if asset.startswith("/static/"):
            assert finders.find(asset.removeprefix("/static/")), asset
    assert client.get("/api/schema/").status_code == 200
