"""Roles (groups created by a migration): marketer reads, operator also writes content/pushes/channels/campaigns, admin
writes everything, integration only posts conversions; users in no role and anonymous users are refused. Every API
endpoint, every API write, every admin action and button, for each role (walked generically:
test_roles_every_door.py). The users of each role: the fixtures in conftest.py."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import Subscriber
from campaigns.models import Campaign, FunnelSettings

from .roles import ROLES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_the_migration_creates_the_three_groups_with_model_permissions():
    perms = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert {"marketer", "operator", "admin", "integration"} <= set(perms)
    assert "view_subscriber" in perms["marketer"] and "view_funnelreport" in perms["marketer"]
    assert not any(p.startswith(("add_", "change_", "delete_")) for p in perms["marketer"])
    assert {"add_push", "change_article", "add_campaign", "add_channel"} <= perms["operator"]
    assert "add_conversion" not in perms["operator"] and "change_subscriber" not in perms["operator"]
    assert {"add_conversion", "change_subscriber", "change_funnelsettings"} <= perms["admin"]


READS = [
    "/api/subscribers/?stage=converted",
    "/api/interactions/",
    "/api/tags/",
    "/api/topics/",
    "/api/contents/",
    "/api/templates/",
    "/api/notice-templates/",
    "/api/segments/",
    "/api/pushes/",
    "/api/channels/",
    "/api/campaigns/",
    "/api/conversion-types/",
    "/api/conversions/",
    "/api/funnel/?breakdown=channel",
    "/api/funnel/dropoffs/?step=followed",
    "/api/funnel/attribution/?by=channel",
]
READ_STATUS = {"marketer": 200, "operator": 200, "admin": 200, "integration": 403, "no_role": 403, "anonymous": 401}


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("role", ROLES)
def test_api_reads(api_as, role, path):
    response = api_as(role).get(path)
    assert response.status_code == READ_STATUS[role], (role, path, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    if response.status_code == 401:
        assert response.json()["message"]


WRITES = {
    # path, body, roles allowed
    "campaign": ("/api/campaigns/", {"name": "Spring"}, {"operator", "admin"}),
    "topic": ("/api/topics/", {"name": "News", "slug": "news"}, {"operator", "admin"}),
    "conversion-type": ("/api/conversion-types/", {"slug": "trial", "name": "Trial"}, {"admin"}),
    "conversion": (
        "/api/conversions/",
        {"openid": "o_role", "type": "purchase", "external_id": "1", "occurred_at": "2026-03-01T00:00:00Z"},
        {"admin", "integration"},
    ),
    "tag": ("/api/tags/", {"name": "vip"}, {"admin"}),
}


@pytest.mark.parametrize("what", list(WRITES))
@pytest.mark.parametrize("role", ROLES)
def test_api_writes(api_as, role, what):
    Subscriber.objects.create(openid="o_role")
    path, body, allowed = WRITES[what]
    response = api_as(role).post(path, body, format="json")
    if role in allowed:
        assert response.status_code == 201, (role, what, response.content[:300])
    else:
        assert response.status_code == (401 if role == "anonymous" else 403), (role, what, response.status_code)
        assert response.json()["message"]


@pytest.mark.parametrize("role", ROLES)
def test_campaign_update_and_delete(api_as, role):
    campaign = Campaign.objects.create(name="Old")
    client = api_as(role)
    patched = client.patch(f"/api/campaigns/{campaign.pk}/", {"name": "New"}, format="json")
    allowed = role in {"operator", "admin"}
    assert patched.status_code == (200 if allowed else 401 if role == "anonymous" else 403)
    campaign.refresh_from_db()
    assert campaign.name == ("New" if allowed else "Old")


ADMIN_PAGES = {
    "/admin/campaigns/funnelreport/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/campaigns/campaign/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/campaigns/campaign/add/": {"marketer": 403, "operator": 200, "admin": 200},
    "/admin/campaigns/conversion/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/campaigns/conversiontype/add/": {"marketer": 403, "operator": 403, "admin": 200},
    "/admin/campaigns/funnelsettings/1/change/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/accounts/subscriber/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/accounts/interaction/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/content/push/add/": {"marketer": 403, "operator": 200, "admin": 200},
    "/admin/content/sendpolicy/add/": {"marketer": 403, "operator": 403, "admin": 200},
    "/admin/campaigns/channel/": {"marketer": 200, "operator": 200, "admin": 200},
    "/admin/conversations/menu/add/": {"marketer": 403, "operator": 403, "admin": 200},
}


@pytest.mark.parametrize("path", list(ADMIN_PAGES))
@pytest.mark.parametrize("role", ["marketer", "operator", "admin", "integration", "no_role", "anonymous"])
def test_admin_pages(admin_as, role, path):
    FunnelSettings.objects.get_or_create(pk=1)
    response = admin_as(role).get(path)
    if role == "anonymous":
        assert response.status_code == 302 and "/login/" in response["Location"]
    elif role in ("integration", "no_role"):  # staff users without a reading role see nothing of ours
        assert response.status_code == 403, (role, path)
    else:
        assert response.status_code == ADMIN_PAGES[path][role], (role, path)


@pytest.mark.parametrize("role", ["marketer", "operator", "admin"])
def test_only_admins_change_the_funnel_settings(admin_as, role):
    FunnelSettings.objects.get_or_create(pk=1)
    client = admin_as(role)
    page = client.get("/admin/campaigns/funnelsettings/1/change/")
    assert (b'name="_save"' in page.content) is (role == "admin")
    response = client.post(
        "/admin/campaigns/funnelsettings/1/change/",
        {
            "interactive_min_interactions": 5,
            "interactive_min_days": 2,
            "interactive_window_days": 30,
            "menu_click_engages": "on",
            "default_window_days": 30,
        },
    )
    assert response.status_code == (302 if role == "admin" else 403)
    assert FunnelSettings.objects.get().interactive_min_interactions == (5 if role == "admin" else 3)
