"""Roles: the one source of who may do what, in the admin and in the API.

- `marketer` reads everything (admin pages, reports, the API's GETs);
- `operator` also writes content, templates, segments, pushes, channels and campaigns (`OPERATOR_WRITES`);
- `admin` does everything: the menu, tags, follower imports, exports, erasure, conversion types, settings. A superuser
  is an admin;
- `integration` (a shop's service account) may only POST conversions: it reads nothing;
- a user in no role reads and writes nothing of ours (403), staff or not.

A role is a Django group of that name (created after every migrate by `role_permissions_sync`). The admin asks
`user.has_perm("app.action_model")`, which `RoleBackend` answers from `role_allows` for our apps' models, whatever
model permissions a group or user holds; the API asks `RolePermission` (the default permission class of every
view), which answers from the same function with the view's model or its `write_roles`. Admin actions declare the
permission they need (`allowed_permissions`); the system check `wechat_crm.E001` refuses an action that does not,
since Django would offer it to anyone who can view the list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core import checks
from django.utils.translation import gettext_lazy as _
from rest_framework import permissions
from rest_framework.request import Request

MARKETER = "marketer"
OPERATOR = "operator"
ADMIN = "admin"
INTEGRATION = "integration"
ROLES = (MARKETER, OPERATOR, ADMIN, INTEGRATION)
READ_ROLES = (MARKETER, OPERATOR, ADMIN)

# Our apps: their models are what the roles are about (Django's own and third-party apps' belong to admins).
PROJECT_APPS = ("accounts", "content", "campaigns", "conversations", "publishing", "wechat_crm")
# Models an operator writes (app_label.model_name); everything else of ours only admins write.
OPERATOR_WRITES = (
    "content.topic",
    "content.article",
    "content.messagetemplate",
    "content.noticetemplate",  # subscription notices: synced from WeChat, added from its library
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

WRITE_OPERATOR = (OPERATOR, ADMIN)
WRITE_ADMIN = (ADMIN,)
WRITE_INTEGRATION = (ADMIN, INTEGRATION)


def user_roles(user: Any) -> set[str]:
    """The user's roles; a superuser is an admin. Cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    cached = getattr(user, "_wechat_crm_roles", None)
    if cached is None:
        cached = roles_prime(user, user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    return cached


def roles_prime(user: Any, group_names: Iterable[str]) -> set[str]:
    """Cache the roles of `user` from the names of its groups (read by the caller, e.g. with its token)."""
    roles = set(group_names) & set(ROLES)
    if user.is_superuser:
        roles.add(ADMIN)
    user._wechat_crm_roles = roles
    return roles


def model_write_roles(app_label: str, model_name: str) -> tuple[str, ...]:
    return WRITE_OPERATOR if f"{app_label}.{model_name}" in OPERATOR_WRITES else WRITE_ADMIN


def role_allows(user: Any, app_label: str, action: str, model_name: str) -> bool:
    """May `user` `action` (view, add, change, delete, or a custom verb: admins only) rows of one of our models?"""
    roles = user_roles(user)
    if action == "view":
        return bool(roles & set(READ_ROLES))
    if action in ("add", "change", "delete"):
        return bool(roles & set(model_write_roles(app_label, model_name)))
    return ADMIN in roles


def user_can_write(user: Any, write_roles: Iterable[str]) -> bool:
    return bool(user_roles(user) & set(write_roles))


def user_can_read(user: Any) -> bool:
    return bool(user_roles(user) & set(READ_ROLES))


class RoleBackend(ModelBackend):
    """Authentication as Django's ModelBackend; permissions on our apps' models from the roles (`role_allows`),
    on Django's own models (users, groups, tokens) from the model permissions as usual."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if not user_obj.is_active:
            return False
        app_label, _sep, codename = perm.partition(".")
        if app_label not in PROJECT_APPS:
            return super().has_perm(user_obj, perm, obj)
        action, _sep, model_name = codename.partition("_")
        return role_allows(user_obj, app_label, action, model_name)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        if app_label not in PROJECT_APPS:
            return super().has_module_perms(user_obj, app_label)
        return user_obj.is_active and user_can_read(user_obj)


def view_write_roles(view: Any, default: Iterable[str] | None = None) -> tuple[str, ...]:
    """The view's `write_roles`, else those of its model (`queryset.model`), else admins only."""
    roles = getattr(view, "write_roles", None)
    if roles is not None:
        return tuple(roles)
    if default is not None:
        return tuple(default)
    queryset = getattr(view, "queryset", None)
    model = getattr(queryset, "model", None)
    if model is not None:
        return model_write_roles(model._meta.app_label, model._meta.model_name)
    return WRITE_ADMIN


class RolePermission(permissions.BasePermission):
    """Every API view's default permission (REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"]): anonymous 401; reads
    for marketers, operators and admins (or the view's `read_roles`); writes for the view's `write_roles`, else
    its model's; users in no role and the integration role get 403 on everything else."""

    message = _("Your role does not allow this.")
    default_write_roles: tuple[str, ...] | None = None

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if request.method in permissions.SAFE_METHODS:
            return bool(user_roles(user) & set(getattr(view, "read_roles", READ_ROLES)))
        return user_can_write(user, view_write_roles(view, self.default_write_roles))


def role_permissions_sync(*, apps: Any = None, using: str = "default") -> None:
    """Create the role groups if missing and give them their model permissions (idempotent). The permissions on our
    models only document the roles in the admin's group pages: `RoleBackend` decides from the roles themselves."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = list(Permission.objects.using(using).select_related("content_type"))
    marketer, operator, admin, _integration = (Group.objects.using(using).get_or_create(name=name)[0] for name in ROLES)

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


@checks.register(checks.Tags.admin)
def admin_actions_declare_permissions(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django offers an action without `allowed_permissions` to anyone who can view the list: refuse such actions."""
    from django.contrib import admin

    errors = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in PROJECT_APPS:
            continue  # Django's and third-party admins: only admins see their lists
        for func, name, _description in model_admin._get_base_actions():
            if not getattr(func, "allowed_permissions", None):
                errors.append(
                    checks.Error(
                        f"The admin action {name!r} of {model._meta.label} declares no allowed_permissions.",
                        hint="Add @admin.action(permissions=['change']) (or the permission it needs).",
                        obj=model_admin.__class__,
                        id="wechat_crm.E001",
                    )
                )
    return errors
