"""Roles: marketer (reads everything), operator (also writes content, pushes, channels, campaigns), admin (all).

A role is a Django group of that name, created by a migration (campaigns 0003). The same rules hold in the admin,
through the model permissions given to each group (`role_permissions_sync`, re-run after every migrate so that new
models get them), and in the API, through `RolePermission` and the view's `write_roles`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

MARKETER = "marketer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (MARKETER, OPERATOR, ADMIN)

# Our apps: their models are what the roles are about (Django's own and third-party apps' belong to admins).
PROJECT_APPS = ("accounts", "content", "campaigns", "conversations", "publishing", "wechat_crm")
# Models an operator writes (app_label.model_name); everything else they only read.
OPERATOR_WRITES = (
    "content.topic",
    "content.article",
    "content.messagetemplate",
    "content.segment",
    "content.push",
    "content.trackedlink",
    "campaigns.channel",
    "campaigns.campaign",
    # Publishing on WeChat: the media library, articles' WeChat settings, drafts and news options.
    "publishing.mediaasset",
    "publishing.articlewechat",
    "publishing.draft",
    "publishing.pushnews",
    # The inbox: operators answer conversations, assign them and keep the quick replies.
    "conversations.conversation",
    "conversations.quickreply",
)


def user_roles(user: Any) -> set[str]:
    """The user's roles; a superuser is an admin. Cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_wechat_crm_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        if user.is_superuser:
            cached.add(ADMIN)
        user._wechat_crm_roles = cached
    return cached


def user_can_write(user: Any, write_roles: Iterable[str]) -> bool:
    roles = user_roles(user)
    if roles:
        return bool(roles & set(write_roles))
    # A staff user in no role group (an account made before the roles existed) keeps writing as before; give them a
    # role to restrict them.
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def user_can_read(user: Any) -> bool:
    # Authenticated users in no role group keep reading, as before the roles existed; put them in a group to write.
    return bool(user is not None and user.is_authenticated and user.is_active)


class RolePermission(permissions.BasePermission):
    """Reads for every authenticated user; writes for the roles in the view's `write_roles` (default: admin)."""

    message = "Your role does not allow this change."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return user_can_read(request.user)
        return user_can_write(request.user, getattr(view, "write_roles", (ADMIN,)))


WRITE_OPERATOR = (OPERATOR, ADMIN)
WRITE_ADMIN = (ADMIN,)


def role_permissions_sync(*, apps: Any = None, using: str = "default") -> None:
    """Create the role groups if missing and give them their model permissions (idempotent; adds, never removes
    what an admin granted by hand except a write the role must not have)."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = list(Permission.objects.using(using).select_related("content_type"))
    marketer, operator, admin = (Group.objects.using(using).get_or_create(name=name)[0] for name in ROLES)

    def is_project(p) -> bool:
        return p.content_type.app_label in PROJECT_APPS

    views = [p for p in perms if is_project(p) and p.codename.startswith("view_")]
    operator_writes = [
        p
        for p in perms
        if f"{p.content_type.app_label}.{p.content_type.model}" in OPERATOR_WRITES
        and p.codename.split("_", 1)[0] in ("add", "change", "delete")
    ]
    marketer.permissions.add(*views)
    operator.permissions.add(*views, *operator_writes)
    admin.permissions.add(*perms)
    # Marketers never write: remove any write that slipped in.
    marketer.permissions.remove(*[p for p in marketer.permissions.all() if not p.codename.startswith("view_")])
