"""Admin: auto-reply rules, the custom menu (published through an action), the operator inbox, journeys with
their report, notifications and the lead score rules."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.admin import ModelAdmin, StackedInline
from unfold.contrib.filters.admin import RangeNumericFilter

from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.exceptions import ApplicationError

from . import menus
from .journeys.reports import journey_report
from .models import (
    AutoReplyRule,
    ChannelTopic,
    Journey,
    JourneyEnrollment,
    JourneyStep,
    Menu,
    Notification,
    OutboundMessage,
    ScoreEntry,
    ScoreRule,
)


@admin.register(AutoReplyRule)
class AutoReplyRuleAdmin(ModelAdmin):
    list_display = ("name", "trigger", "pattern", "channel", "reply_kind", "priority", "active_from", "active_until",
                    "is_active")  # fmt: skip
    list_filter = ("is_active", "trigger", "reply_kind")
    list_editable = ("priority", "is_active")
    search_fields = ("name", "pattern", "reply_text")
    autocomplete_fields = ("article", "template")
    readonly_fields = ("regex_warning",)

    def get_list_display(self, request):
        return (*super().get_list_display(request), "regex_warning")

    @admin.display(description=gettext_lazy("expression"))
    def regex_warning(self, obj):
        if obj.regex_timed_out_at is None:
            return "-"
        return format_html(
            '<strong style="color: #ba2121">{}</strong>',
            _("Timed out on a message at %(at)s and was skipped: simplify it.")
            % {"at": obj.regex_timed_out_at.strftime("%Y-%m-%d %H:%M")},
        )

    def save_model(self, request, obj, form, change):
        if "pattern" in form.changed_data:
            obj.regex_timed_out_at = None  # a new expression gets a new chance
        super().save_model(request, obj, form, change)


@admin.register(Menu)
class MenuAdmin(ModelAdmin):
    list_display = ("name", "published_at", "publish_error", "updated_at")
    readonly_fields = ("published_at", "publish_error")
    actions = ["publish"]

    @admin.action(description=gettext_lazy("Publish the selected menu to WeChat"), permissions=["change"])
    def publish(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Choose exactly one menu to publish."), messages.ERROR)
            return
        try:
            menus.menu_publish(menu=queryset.get())
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, _("The menu is published on WeChat."), messages.SUCCESS)


class JourneyStepInline(StackedInline):
    model = JourneyStep
    extra = 0
    fields = (("position", "wait"), ("condition", "condition_tag", "condition_topic", "condition_value", "on_fail"),
              "action", "text", ("content", "article", "template"), ("notice_template", "notice_values"),
              ("tag", "score_delta"))  # fmt: skip


@admin.register(Journey)
class JourneyAdmin(ModelAdmin):
    list_display = ("name", "trigger", "period", "is_active", "entered")
    list_filter = ("trigger", "is_active")
    inlines = [JourneyStepInline]
    readonly_fields = ("report",)

    @admin.display(description=gettext_lazy("entered"))
    def entered(self, obj):
        return obj.enrollments.count()

    @admin.display(description=gettext_lazy("report"))
    def report(self, obj):
        if obj.pk is None:
            return "-"
        r = journey_report(obj)
        head = format_html(
            "{}: {} · {}: {} · {}: {} · {}: {}",
            _("Entered"), r["entered"], _("Completed"), r["completed"], _("Active"), r["active"],
            _("Converted"), r["converted"],
        )  # fmt: skip
        rows = format_html_join(
            "",
            "<li>{} — {}: {} · {}: {} {}</li>",
            ((s["step"], _("done"), s["done"], _("skipped"), s["skipped"], _reasons(s["skip_reasons"]))
             for s in r["steps"]),
        )  # fmt: skip
        return format_html("<p>{}</p><ul>{}</ul>", head, rows)


def _reasons(counts: dict[str, int]) -> str:
    from content.reasons import reason_label

    if not counts:
        return ""
    return "(" + ", ".join(f"{reason_label(code)}: {n}" for code, n in sorted(counts.items())) + ")"


@admin.register(JourneyEnrollment)
class JourneyEnrollmentAdmin(ModelAdmin):
    list_display = ("journey", "subscriber", "period_key", "status", "next_position", "due_at", "converted_at")
    list_filter = ("journey", "status", ("due_at", RangeDateTimeFilter), ("converted_at", RangeDateTimeFilter))
    list_filter_submit = True
    list_select_related = ("journey", "subscriber")
    search_fields = ("subscriber__openid", "subscriber__remark", "subscriber__nickname")
    raw_id_fields = ("subscriber",)

    def has_add_permission(self, request):
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ModelAdmin):
    list_display = ("subscriber", "kind", "source", "status", "policy_reason", "reason", "created_at", "sent_at")
    list_filter = ("kind", "source", "status", "skip_reason", ("created_at", RangeDateTimeFilter),
                   ("sent_at", RangeDateTimeFilter))  # fmt: skip
    list_filter_submit = True
    list_select_related = ("subscriber",)
    search_fields = ("subscriber__openid", "subscriber__remark", "subscriber__nickname")
    show_full_result_count = False
    raw_id_fields = ("subscriber",)
    readonly_fields = [f.name for f in OutboundMessage._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("send policy"), ordering="skip_reason")
    def policy_reason(self, obj) -> str:
        from content.reasons import reason_label

        return reason_label(obj.skip_reason)


@admin.register(Notification)
class NotificationAdmin(ModelAdmin):
    list_display = ("text", "subscriber", "journey", "created_at", "read_at")
    list_filter = ("journey", ("created_at", RangeDateTimeFilter), ("read_at", RangeDateTimeFilter))
    list_filter_submit = True
    list_select_related = ("subscriber", "journey")
    raw_id_fields = ("subscriber",)


@admin.register(ScoreRule)
class ScoreRuleAdmin(ModelAdmin):
    list_display = ("kind", "points")
    list_editable = ("points",)


@admin.register(ScoreEntry)
class ScoreEntryAdmin(ModelAdmin):
    list_display = ("subscriber", "points", "reason", "at")
    list_filter = (("at", RangeDateTimeFilter), ("points", RangeNumericFilter))
    list_filter_submit = True
    list_select_related = ("subscriber",)
    search_fields = ("subscriber__openid", "subscriber__remark", "subscriber__nickname", "reason")
    show_full_result_count = False
    raw_id_fields = ("subscriber", "interaction")

    def has_add_permission(self, request):
        return False


@admin.register(ChannelTopic)
class ChannelTopicAdmin(ModelAdmin):
    list_display = ("channel", "topic")


from . import admin_inbox  # noqa: E402,F401  (registers the inbox and the quick replies)
