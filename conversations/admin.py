"""Admin: auto-reply rules, the custom menu (published through an action), the operator inbox, journeys with
their report, notifications and the lead score rules."""

from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.admin import ModelAdmin, StackedInline

from content.models import MessageTemplate
from wechat_crm.exceptions import ApplicationError

from . import journeys, menus, services
from .models import (
    AutoReplyRule,
    ChannelTopic,
    Conversation,
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


@admin.register(Conversation)
class ConversationAdmin(ModelAdmin):
    """The operator inbox: unanswered conversations first; a conversation shows the subscriber and the thread."""

    list_display = ("subscriber", "unanswered", "last_inbound_at", "last_outbound_at", "stage", "score")
    list_select_related = ("subscriber",)
    search_fields = ("subscriber__nickname", "subscriber__openid")
    ordering = ("-unanswered", "-last_inbound_at")

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("stage"))
    def stage(self, obj):
        return obj.subscriber.get_stage_display()

    @admin.display(description=gettext_lazy("score"))
    def score(self, obj):
        return obj.subscriber.score

    def get_urls(self):
        return [
            path("<int:pk>/thread/", self.admin_site.admin_view(self.thread_view), name="conversations_thread"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return redirect(reverse("admin:conversations_thread", args=[object_id]))

    def thread_view(self, request, pk: int):
        conversation = get_object_or_404(Conversation.objects.select_related("subscriber"), pk=pk)
        subscriber = conversation.subscriber
        if not self.has_view_permission(request, conversation):
            return redirect("admin:index")
        if request.method == "POST" and self.has_change_permission(request, conversation):
            try:
                if request.POST.get("template"):
                    template = get_object_or_404(MessageTemplate, pk=request.POST["template"])
                    services.template_send(subscriber=subscriber, template=template, by=request.user)
                    self.message_user(request, _("The template message is queued."), messages.SUCCESS)
                else:
                    services.operator_reply(subscriber=subscriber, text=request.POST.get("text", ""), by=request.user)
                    self.message_user(request, _("The reply is queued."), messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return redirect(reverse("admin:conversations_thread", args=[pk]))
        interactions = list(subscriber.interactions.order_by("-created_at", "-id")[:30])
        outbound = list(subscriber.outbound_messages.order_by("-created_at", "-id")[:30])
        thread = sorted(
            [{"at": i.created_at, "inbound": True, "kind": i.kind, "text": i.content or i.event_key or i.kind,
              "reply": i.reply if i.reply not in ("", "success") else ""} for i in interactions]
            + [{"at": o.created_at, "inbound": False, "kind": o.get_kind_display(), "text": o.text,
                "status": o.get_status_display(), "reason": o.reason, "errcode": o.errcode} for o in outbound],
            key=lambda item: item["at"],
        )  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": _("Conversation with %(name)s") % {"name": subscriber},
            "opts": self.model._meta,
            "conversation": conversation,
            "subscriber": subscriber,
            "tags": list(subscriber.tags.values_list("name", flat=True)),
            "thread": thread,
            "window": services.cs_window(subscriber),
            "templates": MessageTemplate.objects.order_by("title")[:100],
        }
        return TemplateResponse(request, "admin/conversations/thread.html", context)


class JourneyStepInline(StackedInline):
    model = JourneyStep
    extra = 0
    fields = (("position", "wait"), ("condition", "condition_tag", "condition_topic", "condition_value", "on_fail"),
              "action", "text", ("content", "article", "template"), ("tag", "score_delta"))  # fmt: skip


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
        r = journeys.journey_report(obj)
        head = format_html(
            "{}: {} · {}: {} · {}: {} · {}: {}",
            _("Entered"), r["entered"], _("Completed"), r["completed"], _("Active"), r["active"],
            _("Converted"), r["converted"],
        )  # fmt: skip
        rows = format_html_join(
            "",
            "<li>{} — {}: {} · {}: {}</li>",
            ((s["step"], _("done"), s["done"], _("skipped"), s["skipped"]) for s in r["steps"]),
        )
        return format_html("<p>{}</p><ul>{}</ul>", head, rows)


@admin.register(JourneyEnrollment)
class JourneyEnrollmentAdmin(ModelAdmin):
    list_display = ("journey", "subscriber", "period_key", "status", "next_position", "due_at", "converted_at")
    list_filter = ("journey", "status")
    raw_id_fields = ("subscriber",)

    def has_add_permission(self, request):
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ModelAdmin):
    list_display = ("subscriber", "kind", "source", "status", "reason", "created_at", "sent_at")
    list_filter = ("kind", "source", "status")
    raw_id_fields = ("subscriber",)
    readonly_fields = [f.name for f in OutboundMessage._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Notification)
class NotificationAdmin(ModelAdmin):
    list_display = ("text", "subscriber", "journey", "created_at", "read_at")
    list_filter = ("read_at",)
    raw_id_fields = ("subscriber",)


@admin.register(ScoreRule)
class ScoreRuleAdmin(ModelAdmin):
    list_display = ("kind", "points")
    list_editable = ("points",)


@admin.register(ScoreEntry)
class ScoreEntryAdmin(ModelAdmin):
    list_display = ("subscriber", "points", "reason", "at")
    raw_id_fields = ("subscriber", "interaction")

    def has_add_permission(self, request):
        return False


@admin.register(ChannelTopic)
class ChannelTopicAdmin(ModelAdmin):
    list_display = ("channel", "topic")
