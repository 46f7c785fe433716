"""The admin of publishing: the media library (upload, send to WeChat, sync), articles' WeChat settings (upload as
draft, publish), drafts, publications, news options of pushes, and WeChat's statistics with the period comparison.
Every action calls the same service as the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from wechat_crm.exceptions import ApplicationError
from wechat_crm.wechat.errors import WeChatError

from . import selectors
from .errors import MediaInvalid
from .models import AccountDailyStat, ArticleDailyStat, ArticleWeChat, Draft, MediaAsset, Publication, PushNews
from .services import drafts, media, publish, stats


def _each(model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet, fn: Callable[[Any], Any]) -> None:
    done = 0
    for obj in queryset:
        try:
            fn(obj)
            done += 1
        except ApplicationError as exc:
            model_admin.message_user(request, f"{obj}: {exc.message}", level=messages.ERROR)
        except WeChatError as exc:
            model_admin.message_user(request, f"{obj}: {exc.message}", level=messages.ERROR)
    if done:
        model_admin.message_user(request, _("Done: %(n)s.") % {"n": done}, level=messages.SUCCESS)


class MediaAssetForm(forms.ModelForm):
    class Meta:
        model = MediaAsset
        fields = ["kind", "title", "file"]

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload and hasattr(upload, "read") and not self.instance.pk:
            upload.seek(0)
            try:
                media.media_check(kind=cleaned.get("kind") or "image", data=upload.read(), name=upload.name)
            except MediaInvalid as exc:
                raise forms.ValidationError({"file": exc.message}) from exc
            upload.seek(0)
        return cleaned


@admin.register(MediaAsset)
class MediaAssetAdmin(ModelAdmin):
    form = MediaAssetForm
    list_display = ["__str__", "kind", "format", "size", "media_id", "wechat_url", "uploaded_at", "from_wechat"]
    list_filter = ["kind", "from_wechat"]
    search_fields = ["title", "media_id"]
    readonly_fields = ["format", "size", "width", "height", "media_id", "wechat_url", "uploaded_at", "from_wechat"]
    actions = ["upload_selected", "sync_from_wechat"]

    def save_model(self, request: HttpRequest, obj: MediaAsset, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["title", "updated_at"])
            return
        upload = form.cleaned_data["file"]
        upload.seek(0)
        created = media.media_create(
            kind=obj.kind, data=upload.read(), filename=upload.name, title=obj.title, by=request.user
        )
        obj.pk, obj.file = created.pk, created.file
        obj._state.adding = False

    @admin.action(description=_("Upload to WeChat"), permissions=["change"])
    def upload_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, lambda a: media.media_upload(asset=a))

    @admin.action(description=_("Sync the list from WeChat"), permissions=["change"])
    def sync_from_wechat(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            result = media.media_sync()
        except WeChatError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        self.message_user(request, _("WeChat lists %(image_count)s images; %(added)s added.") % result)


@admin.register(ArticleWeChat)
class ArticleWeChatAdmin(ModelAdmin):
    list_display = ["article", "cover", "need_open_comment", "wechat_url", "published_at"]
    autocomplete_fields = ["article"]
    raw_id_fields = ["cover"]
    readonly_fields = ["wechat_article_id", "wechat_url", "published_at"]
    actions = ["upload_draft", "publish_selected"]

    @admin.action(description=_("Upload as a WeChat draft"), permissions=["change"])
    def upload_draft(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, lambda o: drafts.draft_for_articles(articles=[o.article]))

    @admin.action(description=_("Publish on WeChat (发布)"), permissions=["change"])
    def publish_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, lambda o: publish.article_publish(article=o.article, by=request.user))


@admin.register(Draft)
class DraftAdmin(ModelAdmin):
    list_display = ["__str__", "status", "push", "uploaded_at", "consumed_at"]
    list_filter = ["status"]
    readonly_fields = ["push", "status", "media_id", "fingerprint", "uploaded_at", "consumed_at"]
    actions = ["upload_selected", "delete_on_wechat"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Upload or update on WeChat"), permissions=["change"])
    def upload_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, lambda d: drafts.draft_upload(draft=d))

    @admin.action(description=_("Delete on WeChat"), permissions=["change"])
    def delete_on_wechat(self, request: HttpRequest, queryset: QuerySet) -> None:
        _each(self, request, queryset, lambda d: drafts.draft_delete(draft=d))


@admin.register(Publication)
class PublicationAdmin(ModelAdmin):
    list_display = ["publish_id", "status", "article_id", "created_at", "finished_at"]
    list_filter = ["status"]
    readonly_fields = ["draft", "publish_id", "status", "wechat_status", "article_id", "urls", "finished_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(PushNews)
class PushNewsAdmin(ModelAdmin):
    """A news push's options: more articles, the reprint rule, to every follower; and why it failed."""

    list_display = ["push", "send_ignore_reprint", "to_all", "failure"]
    autocomplete_fields = ["push"]
    filter_horizontal = ["more_articles"]
    readonly_fields = ["failure"]


@admin.register(ArticleDailyStat)
class ArticleDailyStatAdmin(ModelAdmin):
    list_display = ["ref_date", "msgid", "title", "read_user", "read_count", "share_user", "share_count",
                    "read_from_session", "read_from_other"]  # fmt: skip
    list_filter = ["ref_date"]
    search_fields = ["title", "msgid"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AccountDailyStat)
class AccountDailyStatAdmin(ModelAdmin):
    """The account's daily figures, and above them the last 7 or 28 days against the 7 or 28 before."""

    list_display = ["ref_date", "report", "source", "new_user", "cancel_user", "cumulate_user", "read_user",
                    "share_count"]  # fmt: skip
    list_filter = ["report", "ref_date"]
    actions = ["pull_yesterday"]
    change_list_template = "publishing/admin/accountdailystat_change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        days = 28 if request.GET.get("compare") == "28" else 7
        params = request.GET.copy()
        params.pop("compare", None)
        request.GET = params
        comparison = selectors.period_compare(days=days)
        labels = {"new": _("new followers"), "cancelled": _("cancelled"), "net": _("net"),
                  "cumulative": _("cumulative"), "reads": _("readers"), "shares": _("shares")}  # fmt: skip
        rows = [
            (labels[k], comparison["current"][k], comparison["previous"][k],
             "-" if comparison["change"][k] is None else f"{comparison['change'][k] * 100:+.1f}%")
            for k in labels
        ]  # fmt: skip
        context = {"comparison": comparison, "comparison_rows": rows, "compare_days": days, **(extra_context or {})}
        response = super().changelist_view(request, extra_context=context)
        if isinstance(response, TemplateResponse):
            response.context_data.update(context)
        return response

    @admin.action(description=_("Pull yesterday's figures from WeChat now"), permissions=["change"])
    def pull_yesterday(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            counts = stats.stats_pull_yesterday()
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
            return
        self.message_user(request, _("Pulled %(n)s rows.") % {"n": sum(counts.values())})
