"""Admin actions of personal-data rights on the subscriber list: export (a JSON file) and erase. Admin role only."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import privacy
from .privacy_api import user_is_admin


def _refuse(admin_obj: admin.ModelAdmin, request: HttpRequest) -> bool:
    if user_is_admin(request.user):
        return False
    admin_obj.message_user(request, _("Only the admin role may export or erase personal data."), messages.ERROR)
    return True


@admin.action(description=_("Export personal data (JSON)"), permissions=["change"])
def export_personal_data(admin_obj: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet):
    if _refuse(admin_obj, request):
        return None
    exports = [privacy.subscriber_export(subscriber=s, by=request.user, via="admin") for s in queryset.order_by("pk")]
    body = json.dumps({"subscribers": exports}, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    name = f"subscribers-export-{timezone.now():%Y%m%d-%H%M%S}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@admin.action(description=_("Erase personal data (cannot be undone)"), permissions=["change"])
def erase_personal_data(admin_obj: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet):
    """First a page that lists the subscribers and says what erasing does; erased only once that is confirmed."""
    if _refuse(admin_obj, request):
        return None
    subscribers = list(queryset.order_by("pk"))
    if request.POST.get("post") != "yes":
        context = {
            **admin_obj.admin_site.each_context(request),
            "title": _("Erase personal data"),
            "subtitle": None,
            "opts": admin_obj.model._meta,
            "subscribers": subscribers,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": admin_obj.media,
        }
        return TemplateResponse(request, "admin/accounts/subscriber/erase_confirmation.html", context)
    for subscriber in subscribers:
        privacy.subscriber_erase(subscriber=subscriber, by=request.user, via="admin")
    admin_obj.message_user(
        request,
        _("%(count)d subscriber(s) erased; the audit log records it.") % {"count": len(subscribers)},
        messages.SUCCESS,
    )
    return None
