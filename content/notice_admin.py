"""The admin of subscription notices (订阅通知): the account's notice templates (sync from WeChat, add from WeChat's
public library, delete) and people's consents (read only: they come from WeChat's events). Every change goes through
content.services.notices, as the API's."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from wechat_crm.exceptions import ApplicationError
from wechat_crm.wechat.errors import WeChatError

from .models import NoticeConsent, NoticeConsentChange, NoticeTemplate
from .services import notices


class NoticeLibraryAddForm(forms.Form):
    tid = forms.CharField(label=_("library title ID"), max_length=32)
    kid_list = forms.CharField(
        label=_("keyword IDs"), max_length=64, help_text=_("2 to 5 keyword ids of the title, in order: 1,2,4.")
    )
    scene_desc = forms.CharField(label=_("service scene"), max_length=15, required=False)

    def clean_kid_list(self) -> list[int]:
        try:
            return [int(k) for k in self.cleaned_data["kid_list"].replace("，", ",").split(",") if k.strip()]
        except ValueError:
            raise forms.ValidationError(_("Keyword ids are whole numbers separated by commas.")) from None


@admin.register(NoticeTemplate)
class NoticeTemplateAdmin(ModelAdmin):
    list_display = ["title", "template_id", "kind", "keyword_list", "on_wechat", "synced_at"]
    list_filter = ["on_wechat", "kind"]
    search_fields = ["title", "template_id"]
    readonly_fields = ["template_id", "title", "kind", "content", "example", "keyword_list", "library_tid",
                       "scene_desc", "on_wechat", "synced_at", "created_at", "consent_counts"]  # fmt: skip
    fields = readonly_fields
    change_list_template = "content/admin/noticetemplate_change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # added from WeChat's library (the page's button), or synced

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # WeChat holds them: nothing to edit here

    def delete_model(self, request: HttpRequest, obj: NoticeTemplate) -> None:
        notices.notice_template_delete(template=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for template in queryset:
            notices.notice_template_delete(template=template)

    @admin.display(description=_("keywords"))
    def keyword_list(self, template: NoticeTemplate) -> str:
        return ", ".join(f"{k['name']} ({k['key']})" for k in template.keywords) or "-"

    @admin.display(description=_("consents"))
    def consent_counts(self, template: NoticeTemplate) -> str:
        qs = NoticeConsent.objects.filter(template_id=template.template_id)
        return _("%(accepted)d accepted, %(total)d decided") % {
            "accepted": qs.filter(accepted=True).count(),
            "total": qs.count(),
        }

    def get_urls(self):
        return [
            path("sync/", self.admin_site.admin_view(self.sync_view), name="content_noticetemplate_sync"),
            path("library/", self.admin_site.admin_view(self.library_view), name="content_noticetemplate_library"),
            *super().get_urls(),
        ]

    def _check_write(self, request: HttpRequest) -> None:
        if not request.user.has_perm("content.change_noticetemplate"):
            raise PermissionDenied

    def sync_view(self, request: HttpRequest) -> HttpResponse:
        self._check_write(request)
        if request.method == "POST":
            try:
                counts = notices.notice_templates_sync()
            except WeChatError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    _("Synced from WeChat: %(created)d new, %(updated)d updated, %(gone)d no longer on WeChat.")
                    % counts,
                    messages.SUCCESS,
                )
        return HttpResponseRedirect(reverse("admin:content_noticetemplate_changelist"))

    def library_view(self, request: HttpRequest) -> HttpResponse:
        self._check_write(request)
        form = NoticeLibraryAddForm(request.POST or None, initial={"tid": request.GET.get("tid", "")})
        if request.method == "POST" and form.is_valid():
            try:
                template = notices.notice_template_add(**form.cleaned_data)
            except ApplicationError as exc:
                for field, errors in exc.extra.get("fields", {}).items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            except WeChatError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, _("Added %(title)s.") % {"title": template.title}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:content_noticetemplate_change", args=[template.pk]))
        library, keywords, error = {"titles": [], "categories": []}, [], ""
        try:
            library = notices.notice_library(limit=30)
            tid = request.GET.get("tid") or request.POST.get("tid")
            if tid:
                keywords = notices.notice_library_keywords(tid=tid)
        except WeChatError as exc:
            error = exc.message
        titles = format_html_join(
            "", '<li><a href="?tid={}">{}</a> ({})</li>', ((t["tid"], t["title"], t["tid"]) for t in library["titles"])
        )
        keyword_rows = format_html_join(
            "", "<li>{}: {} ({}; {})</li>", ((k["kid"], k["name"], k["rule"], k["example"]) for k in keywords)
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Add a notice template from WeChat's library"),
            "form": form,
            "titles": format_html("<ul>{}</ul>", titles),
            "keywords": format_html("<ul>{}</ul>", keyword_rows) if keywords else "",
            "error": error,
        }
        return TemplateResponse(request, "content/admin/notice_library.html", context)


@admin.register(NoticeConsent)
class NoticeConsentAdmin(ModelAdmin):
    """Current consents, recorded from WeChat's popup and change events: nothing to add or change here."""

    list_display = ["subscriber", "template_id", "accepted", "credits", "changed_at"]
    list_filter = ["accepted"]
    search_fields = ["template_id", "subscriber__openid"]
    list_select_related = ["subscriber"]
    readonly_fields = ["subscriber", "template_id", "accepted", "credits", "changed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(NoticeConsentChange)
class NoticeConsentChangeAdmin(NoticeConsentAdmin):
    """Every decision (history: rows are only added)."""

    list_display = ["subscriber", "template_id", "decision", "popup_scene", "at"]
    list_filter = ["decision"]
    readonly_fields = ["subscriber", "template_id", "decision", "popup_scene", "at", "interaction"]
