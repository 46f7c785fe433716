"""The content admin's sending pages: the send policy, operator profiles, segments, pushes and deliveries."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.admin_lists import QuickCheckboxMixin
from wechat_crm.admin_saving import adopt_saved
from wechat_crm.exceptions import ApplicationError
from wechat_crm.paginators import EstimatedCountPaginator

from . import selectors
from .admin_fields import PrettyJSONField
from .errors import SegmentInvalid
from .models import Delivery, OperatorProfile, Push, Segment, SendPolicy
from .reasons import LABELS as REASON_LABELS
from .reasons import reason_label
from .services import deliveries, pushes, segments


def _mask(openid: str) -> str:
    return f"{openid[:4]}…{openid[-2:]}" if len(openid) > 8 else "…"


@admin.register(SendPolicy)
class SendPolicyAdmin(ModelAdmin):
    list_display = ["__str__", "account_type", "frequency_cap", "frequency_window_days", "quiet_start", "quiet_end"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not SendPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        policy = SendPolicy.current()
        return HttpResponseRedirect(reverse("admin:content_sendpolicy_change", args=[policy.pk]))


@admin.register(OperatorProfile)
class OperatorProfileAdmin(ModelAdmin):
    list_display = ["user", "masked_openid"]
    autocomplete_fields = ["user"]

    @admin.display(description=_("OpenID"))
    def masked_openid(self, profile: OperatorProfile) -> str:
        return _mask(profile.openid)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OperatorProfile]:
        qs = super().get_queryset(request).select_related("user")
        return qs if request.user.is_superuser else qs.filter(user=request.user)


class SegmentAdminForm(forms.ModelForm):
    rules = PrettyJSONField(
        label=_("rules"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 16, "style": "font-family: ui-monospace, monospace; width: 90%;"}),
        help_text=Segment._meta.get_field("rules").help_text,
    )

    class Meta:
        model = Segment
        fields = ["name", "description", "rules"]

    def clean_rules(self):
        try:
            return segments.rules_validate(self.cleaned_data.get("rules"))
        except SegmentInvalid as exc:
            raise forms.ValidationError(exc.message) from exc


@admin.register(Segment)
class SegmentAdmin(ModelAdmin):
    form = SegmentAdminForm
    list_display = ["name", "recipient_count", "updated_at"]
    search_fields = ["name"]
    readonly_fields = ["recipient_count", "sample", "rules_help", "created_by", "created_at", "updated_at"]
    fields = ["name", "description", "rules", "rules_help", "recipient_count", "sample", "created_by", "created_at"]

    @admin.display(description=_("recipients now"))
    def recipient_count(self, segment: Segment) -> str:
        if not segment.pk:
            return "-"
        return str(segments.segment_subscribers(rules=segment.rules).count())

    @admin.display(description=_("sample"))
    def sample(self, segment: Segment) -> str:
        if not segment.pk:
            return "-"
        rows = segments.segment_subscribers(rules=segment.rules).order_by("id").values("nickname", "openid")[:20]
        names = [r["nickname"] or _mask(r["openid"]) for r in rows]
        return ", ".join(names) or str(_("Nobody matches."))

    @admin.display(description=_("rule types"))
    def rules_help(self, segment: Segment | None) -> str:
        doc = segments.__doc__.split("\n\n")[1]
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", doc)

    def save_model(self, request: HttpRequest, obj: Segment, form, change: bool) -> None:
        segments.segment_save(segment=obj, by=request.user)


class PushAdminForm(forms.ModelForm):
    class Meta:
        model = Push
        fields = list(pushes.PUSH_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.status not in (Push.Status.DRAFT, Push.Status.SCHEDULED):
            raise forms.ValidationError(_("Only a draft or scheduled push can be edited."))
        if "notice_values" in cleaned and cleaned["notice_values"] is None:
            cleaned["notice_values"] = {}
        if cleaned.get("channel") == Push.Channel.NOTICE:  # WeChat's value rules, each error on its keyword
            from .errors import NoticeInvalid, PushInvalid
            from .services.notices import notice_values_check

            template = cleaned.get("notice_template")
            if template is None:
                self.add_error("notice_template", _("Choose a notice template."))
            else:
                try:
                    cleaned["notice_values"] = notice_values_check(
                        template=template, values=cleaned.get("notice_values") or {}
                    )
                except (NoticeInvalid, PushInvalid) as exc:
                    for field, errors in exc.extra.get("fields", {}).items():
                        for error in errors:
                            self.add_error("notice_values", f"{field.removeprefix('notice_values.')}: {error}")
        try:
            pushes.push_template_check(
                channel=cleaned.get("channel") or Push.Channel.TEMPLATE, template=cleaned.get("template"),
                allow_marketing_template=bool(cleaned.get("allow_marketing_template")),
            )  # fmt: skip
        except ApplicationError as exc:
            self.add_error("allow_marketing_template", exc.message)
        return cleaned


@admin.register(Push)
class PushAdmin(ModelAdmin):
    form = PushAdminForm
    list_display = ["name", "channel", "status", "send_at", "segment", "recipients", "finished_at"]
    list_filter = ["status", "channel", "segment", ("send_at", RangeDateTimeFilter),
                   ("finished_at", RangeDateTimeFilter)]  # fmt: skip
    list_filter_submit = True
    search_fields = ["name"]
    list_select_related = ["segment"]
    autocomplete_fields = ["article", "template", "segment"]
    readonly_fields = ["status", "recipients", "started_at", "finished_at", "report", "wechat_report", "created_by",
                       "created_at"]  # fmt: skip
    actions = ["schedule_selected", "cancel_selected", "send_test_selected"]
    change_form_template = "content/admin/push_change_form.html"

    def get_fields(self, request: HttpRequest, obj: Push | None = None) -> list[str]:
        return [*pushes.PUSH_FIELDS, *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Push | None = None) -> list[str]:
        if obj is not None and obj.status not in (Push.Status.DRAFT, Push.Status.SCHEDULED):
            return [*pushes.PUSH_FIELDS, *self.readonly_fields]
        return list(self.readonly_fields)

    def get_urls(self):
        from django.urls import path

        return [
            path(
                "<int:push_id>/progress/", self.admin_site.admin_view(self.progress_view), name="content_push_progress"
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request: HttpRequest, push_id: int) -> JsonResponse:
        push = Push.objects.filter(pk=push_id).first()
        if push is None or not self.has_view_permission(request, push):
            return JsonResponse({"message": str(_("Not found."))}, status=404)
        return JsonResponse(deliveries.push_progress(push=push))

    @admin.display(description=_("report"))
    def report(self, push: Push) -> str:
        if not push.pk or push.started_at is None:
            return "-"
        r = selectors.push_report(push=push)
        skipped = ", ".join(f"{reason_label(k)}: {v}" for k, v in sorted(r["skipped_by_reason"].items())) or "-"

        def pct(x):
            return "-" if x is None else f"{x * 100:.2f}%"

        rows = [
            (_("recipients"), r["recipients"]),
            (_("skipped"), f"{r['skipped']} ({skipped})"),
            (_("sent"), r["sent"]),
            (_("delivered"), r["delivered"]),
            (_("failed"), r["failed"]),
            (_("errors"), r["errors"]),
            (_("unknown outcome"), r["unknown"]),
            (_("clicks (unique)"), f"{r['clicks']} ({r['unique_clickers']})"),
            (_("click-through rate"), pct(r["click_through_rate"])),
            (_("forwards: clicks by other followers / opens by non-followers / follows brought"),
             f"{r['forwarded_clicks']} / {r['forwards_to_non_followers']} / {r['follows_from_forwards']}"),
            (_("unfollows within 24 h"), _("%(count)s = %(rate)s (baseline %(baseline)s)")
             % {"count": r["unfollows_24h"], "rate": pct(r["unfollow_rate_24h"]),
                "baseline": pct(r["baseline_unfollow_rate_24h"])}),
            (_("unfollows within 72 h"), _("%(count)s = %(rate)s (baseline %(baseline)s)")
             % {"count": r["unfollows_72h"], "rate": pct(r["unfollow_rate_72h"]),
                "baseline": pct(r["baseline_unfollow_rate_72h"])}),
        ]  # fmt: skip
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description=_("WeChat's figures"))
    def wechat_report(self, push: Push) -> str:
        """WeChat's reads and shares of a news push's articles (WeChat's statistics, from the day after the send)."""
        if not push.pk or push.channel != Push.Channel.NEWS:
            return "-"
        from publishing.selectors import push_wechat_figures

        figures = push_wechat_figures(push=push)
        rows = [
            (a["index"], a["title"], a["read_user"], a["read_count"], a["share_user"], a["share_count"],
             "-" if a["read_from_session"] is None else a["read_from_session"],
             "-" if a["read_from_other"] is None else a["read_from_other"], a["url"] or "-")
            for a in figures["articles"]
        ]  # fmt: skip
        head = format_html(
            "<tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("title"), _("readers"), _("reads"), _("sharers"), _("shares"), _("readers from the chat"),
            _("readers from other sources"), _("URL"),
        )  # fmt: skip
        body = format_html_join("", "<tr>" + "<td>{}</td>" * 9 + "</tr>", rows)
        failure = format_html("<p>{}: {}</p>", _("Failed"), figures["failure"]) if figures["failure"] else ""
        if not rows:
            return format_html("{}<p>{}</p>", failure, _("WeChat's figures come the day after the send."))
        return format_html("{}<table>{}{}</table>", failure, head, body)

    def save_model(self, request: HttpRequest, obj: Push, form, change: bool) -> None:
        """Through push_create / push_update, as the API does. A marketing template sent as a template message
        (the explicit override) is saved with a warning."""
        template = form.cleaned_data.get("template")
        if (
            form.cleaned_data.get("allow_marketing_template")
            and form.cleaned_data.get("channel") == Push.Channel.TEMPLATE
            and template is not None
            and template.purpose == template.Purpose.MARKETING
        ):
            self.message_user(
                request,
                _("This push sends the marketing template “%(template)s” as a template message: WeChat reserves "
                  "template messages for service notices and may withdraw the account's template rights.")
                % {"template": template.title},
                level=messages.WARNING,
            )  # fmt: skip
        if change:
            data = {name: form.cleaned_data[name] for name in form.changed_data if name in pushes.PUSH_FIELDS}
            pushes.push_update(push=obj, data=data)
        else:
            data = {name: form.cleaned_data[name] for name in pushes.PUSH_FIELDS if name in form.cleaned_data}
            adopt_saved(obj, pushes.push_create(by=request.user, **data))

    def _button(self, request: HttpRequest, push: Push) -> HttpResponse | None:
        try:
            if "_schedule" in request.POST:
                pushes.push_schedule(push=push, by=request.user)
                done = _("Scheduled for %(at)s.") % {"at": timezone.localtime(push.send_at).strftime("%Y-%m-%d %H:%M")}
            elif "_cancel" in request.POST:
                pushes.push_cancel(push=push)
                done = _("Cancelled.")
            elif "_send_test" in request.POST:
                deliveries.push_send_test(push=push, user=request.user)
                done = _("Test message sent to your openid.")
            else:
                return None
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
        else:
            self.message_user(request, done, level=messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:content_push_change", args=[push.pk]))

    def response_add(self, request: HttpRequest, obj: Push, post_url_continue=None) -> HttpResponse:
        return self._button(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Push) -> HttpResponse:
        return self._button(request, obj) or super().response_change(request, obj)

    def _each(self, request: HttpRequest, queryset: QuerySet[Push], service, done_message) -> None:
        done = 0
        for push in queryset:
            try:
                service(push)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{push.name}: {exc.message}", level=messages.WARNING)
        if done:
            self.message_user(request, done_message % {"count": done}, level=messages.SUCCESS)

    @admin.action(description=_("Schedule the selected pushes (at their send time)"), permissions=["change"])
    def schedule_selected(self, request: HttpRequest, queryset: QuerySet[Push]) -> None:
        self._each(request, queryset, lambda p: pushes.push_schedule(push=p, by=request.user),
                   _("%(count)d pushes scheduled."))  # fmt: skip

    @admin.action(description=_("Cancel the selected pushes (stops a send in progress)"), permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Push]) -> None:
        self._each(request, queryset, lambda p: pushes.push_cancel(push=p), _("%(count)d pushes cancelled."))

    @admin.action(description=_("Send a test of the selected pushes to me"), permissions=["change"])
    def send_test_selected(self, request: HttpRequest, queryset: QuerySet[Push]) -> None:
        self._each(request, queryset, lambda p: deliveries.push_send_test(push=p, user=request.user),
                   _("%(count)d test messages sent."))  # fmt: skip


class ReasonFilter(admin.SimpleListFilter):
    """The reasons the product writes (content.reasons), listed without a DISTINCT over millions of deliveries."""

    title = _("reason")
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [*((code, str(label)) for code, label in REASON_LABELS.items()), ("wechat:", _("WeChat errors"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(reason__startswith=value) if value.endswith(":") else queryset.filter(reason=value)


@admin.register(Delivery)
class DeliveryAdmin(QuickCheckboxMixin, ModelAdmin):
    list_display = [
        "id", "push", "subscriber", "status", "reason_text", "errcode", "attempts", "sent_at", "finished_at"
    ]  # fmt: skip
    list_filter = ["status", "channel", ReasonFilter, ("sent_at", RangeDateTimeFilter)]
    list_filter_submit = True
    list_select_related = ["push", "subscriber"]
    search_fields = ["push__name", "subscriber__openid"]
    raw_id_fields = ["push", "subscriber"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # no count of the whole table (wechat_crm/paginators.py)

    @admin.display(description=_("reason"), ordering="reason")
    def reason_text(self, delivery: Delivery) -> str:
        return reason_label(delivery.reason)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
