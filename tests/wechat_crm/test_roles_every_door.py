"""Every door walked generically for each role, so that new endpoints, admin actions and buttons are covered without
listing them: each API write checks the role, each admin action is offered only to the roles that may write its
model, the buttons and the inbox refuse readers, the integration token does nothing but post conversions."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Subscriber

from .roles import ROLES, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

# --- Every door, walked generically: new endpoints, admin actions and buttons are covered without listing them ----

# The models operators write (the rule of the issue, written here independently of wechat_crm.permissions).
OPERATOR_MODELS = {
    "content.topic",
    "content.article",
    "content.messagetemplate",
    "content.noticetemplate",
    "content.segment",
    "content.push",
    "content.trackedlink",
    "campaigns.channel",
    "campaigns.campaign",
    "conversations.conversation",
    "conversations.quickreply",
    "publishing.mediaasset",
    "publishing.articlewechat",
    "publishing.draft",
    "publishing.pushnews",
}
OPERATOR_API_PREFIXES = (
    "/api/topics/",
    "/api/contents/",
    "/api/templates/",
    "/api/notice-templates/",
    "/api/segments/",
    "/api/pushes/",
    "/api/channels/",
    "/api/campaigns/",
    "/api/media/",
    "/api/drafts/",
    "/api/wechat-stats/",
)


def may_write(role: str, label: str) -> bool:
    return role == "admin" or (role == "operator" and label in OPERATOR_MODELS)


def api_writes() -> list[tuple[str, str]]:
    """Every (path, method) of the API that is not a read, from the URL configuration (ids: 999999, absent)."""
    import re

    from django.urls import URLResolver, get_resolver

    found = []

    def concrete(route: str) -> str:
        route = re.sub(r"\(\?P<\w+>[^)]*\)", "999999", route)
        route = re.sub(r"<(?:\w+:)?\w+>", "999999", route)
        return "/" + route.replace("^", "").replace("$", "").replace("\\", "")

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
                continue
            route = prefix + str(p.pattern)
            cls = getattr(p.callback, "cls", None)
            if not route.lstrip("^").startswith("api/") or cls is None:
                continue
            actions = getattr(p.callback, "actions", None)
            if actions:
                methods = [m for m in actions if m not in ("get", "head", "options")]
            else:
                methods = [m for m in ("post", "put", "patch", "delete") if hasattr(cls, m)]
            found.extend((concrete(route), m) for m in methods)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


def api_write_allowed(role: str, path: str, method: str) -> bool:
    if path == "/api/conversions/" and method == "post":
        return role in ("admin", "integration")
    if path.startswith(OPERATOR_API_PREFIXES):
        return role in ("operator", "admin")
    return role == "admin"


def test_the_api_has_writes_to_walk():
    writes = api_writes()
    assert ("/api/conversions/", "post") in writes and ("/api/subscribers/999999/erase/", "post") in writes
    assert ("/api/pushes/999999/schedule/", "post") in writes and ("/api/campaigns/999999/", "delete") in writes


@pytest.mark.parametrize("role", ROLES)
def test_every_api_write_checks_the_role(api_as, role):
    """Each write is sent with an empty body or an absent id: a refused role gets 403 (401 anonymous) before anything
    is looked up; an allowed one gets past the permission check (400, 404, 405, 422 ...)."""
    client = api_as(role)
    client.raise_request_exception = False  # a 500 behind the permission check is another test's business
    wrong = []
    for path, method in api_writes():
        response = client.generic(method.upper(), path, "{}", content_type="application/json")
        allowed = api_write_allowed(role, path, method)
        expected_refusal = 401 if role == "anonymous" else 403
        if allowed and response.status_code in (401, 403):
            wrong.append((method, path, response.status_code, "should be allowed"))
        elif not allowed and response.status_code != expected_refusal:
            wrong.append((method, path, response.status_code, "should be refused"))
    assert not wrong, wrong


def _admin_request(rf, user):
    request = rf.post("/admin/")
    request.user = user
    return request


@pytest.mark.parametrize("role", ["marketer", "operator", "admin", "integration", "no_role"])
def test_every_admin_action_is_offered_only_to_the_roles_that_may_write_the_model(rf, django_user_model, role):
    from django.contrib import admin

    user = make_user(django_user_model, role)
    superuser = django_user_model.objects.create_superuser(username="root", password="pw")
    wrong, walked = [], 0
    for model, model_admin in admin.site._registry.items():
        request = _admin_request(rf, user)
        # An action runs from the list page, which answers 403 without the view permission.
        offered = set(model_admin.get_actions(request)) if model_admin.has_view_or_change_permission(request) else set()
        offered_to_admins = set(model_admin.get_actions(_admin_request(rf, superuser)))
        for _func, name, _description in model_admin._get_base_actions():
            walked += 1
            expected = name in offered_to_admins and may_write(role, model._meta.label_lower)
            if (name in offered) != expected:
                wrong.append((model._meta.label, name, "offered" if name in offered else "not offered"))
    assert walked > 20
    assert not wrong, wrong


def test_every_custom_admin_action_declares_its_permission():
    from wechat_crm.permissions import admin_actions_declare_permissions

    assert admin_actions_declare_permissions() == []


MARKETER_ACTION_ATTEMPTS = [
    # (changelist, action, what must not happen)
    ("/admin/content/push/", "schedule_selected", "push"),
    ("/admin/conversations/menu/", "publish", "menu"),
    ("/admin/accounts/tag/", "sync_with_wechat", "tag"),
    ("/admin/accounts/subscriber/", "start_follower_sync", "subscriber"),
    ("/admin/accounts/subscriber/", "erase_personal_data", "subscriber"),
]


@pytest.mark.parametrize("role", ["marketer", "operator", "no_role", "integration"])
def test_the_attacks_through_admin_actions_reach_nothing(admin_as, role, fake_wechat):
    """A marketer's POST of an action (what the action list would send) schedules no push, publishes no menu, syncs
    nothing with WeChat and erases no one; an operator may schedule pushes but not publish the menu."""
    from accounts.models import Tag
    from content.models import Push
    from conversations.models import Menu
    from tests.content.push_factories import PushFactory

    push = PushFactory(status=Push.Status.DRAFT)
    menu = Menu.objects.create(name="m", buttons=[{"type": "click", "name": "Hi", "key": "HI"}])
    tag = Tag.objects.create(name="t")
    subscriber = Subscriber.objects.create(openid="o_target", nickname="Target")
    targets = {"push": push.pk, "menu": menu.pk, "tag": tag.pk, "subscriber": subscriber.pk}
    fake_wechat.clear_calls()
    client = admin_as(role)
    for changelist, action, target in MARKETER_ACTION_ATTEMPTS:
        if role == "operator" and action == "schedule_selected":
            continue
        client.post(changelist, {"action": action, "_selected_action": [targets[target]], "index": 0, "post": "yes"})
    push.refresh_from_db()
    subscriber.refresh_from_db()
    assert push.status == (Push.Status.DRAFT)
    assert Menu.objects.get().published_at is None
    assert subscriber.openid == "o_target" and subscriber.nickname == "Target"
    assert fake_wechat.count("/cgi-bin/menu/create") == 0
    assert fake_wechat.count("/cgi-bin/tags/get") == 0 and fake_wechat.count("/cgi-bin/user/get") == 0


@pytest.mark.parametrize("role", ["marketer", "no_role", "integration"])
def test_the_push_and_article_buttons_refuse_readers(admin_as, role):
    from content.models import Article, Push
    from tests.content.push_factories import PushFactory

    push = PushFactory(status=Push.Status.DRAFT)
    article = Article.objects.create(title="A", slug="a", body="Hello")
    client = admin_as(role)
    for button in ("_schedule", "_cancel", "_send_test"):
        response = client.post(f"/admin/content/push/{push.pk}/change/", {"name": push.name, button: "1"})
        assert response.status_code == 403, (button, response.status_code)
    response = client.post(f"/admin/content/article/{article.pk}/change/", {"title": "A", "_publish": "1"})
    assert response.status_code == 403
    push.refresh_from_db()
    article.refresh_from_db()
    assert push.status == Push.Status.DRAFT and article.status == Article.Status.DRAFT


@pytest.mark.parametrize("role", ["marketer", "integration", "no_role"])
def test_readers_cannot_reply_from_the_inbox(admin_as, role):
    from conversations.models import Conversation, OutboundMessage

    subscriber = Subscriber.objects.create(openid="o_inbox")
    conversation = Conversation.objects.create(subscriber=subscriber)
    admin_as(role).post(f"/admin/conversations/conversation/{conversation.pk}/thread/", {"text": "hello"})
    assert not OutboundMessage.objects.exists()


def test_the_same_action_posts_work_for_an_admin(admin_as, fake_wechat):
    """The control of the test above: the very same POSTs, sent by an admin, schedule and publish."""
    from content.models import Push
    from conversations.models import Menu
    from tests.content.push_factories import PushFactory, policy

    policy()
    push = PushFactory(status=Push.Status.DRAFT)
    menu = Menu.objects.create(name="m", buttons=[{"type": "click", "name": "Hi", "key": "HI"}])
    fake_wechat.clear_calls()
    client = admin_as("admin")
    client.post("/admin/content/push/", {"action": "schedule_selected", "_selected_action": [push.pk], "index": 0})
    client.post("/admin/conversations/menu/", {"action": "publish", "_selected_action": [menu.pk], "index": 0})
    push.refresh_from_db()
    assert push.status == Push.Status.SCHEDULED
    assert Menu.objects.get().published_at is not None and fake_wechat.count("/cgi-bin/menu/create") == 1


def test_the_shops_integration_token_posts_conversions_and_can_do_nothing_else(django_user_model):
    """The shop's token no longer needs the admin role: with `integration` it records conversions, and cannot read,
    export or erase anyone."""
    from rest_framework.authtoken.models import Token

    subscriber = Subscriber.objects.create(openid="o_shop_buyer")
    shop = make_user(django_user_model, "integration")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=shop).key}")
    event = {"openid": "o_shop_buyer", "type": "purchase", "external_id": "A-1", "occurred_at": "2026-03-01T00:00:00Z"}
    assert client.post("/api/conversions/", event, format="json").status_code == 201
    assert client.get(f"/api/subscribers/{subscriber.pk}/export/").status_code == 403
    assert client.post(f"/api/subscribers/{subscriber.pk}/erase/").status_code == 403
    assert client.get("/api/subscribers/").status_code == 403
    assert client.get("/api/conversions/").status_code == 403
    subscriber.refresh_from_db()
    assert subscriber.openid == "o_shop_buyer"
