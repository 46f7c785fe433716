"""The operator inbox in the admin: conversations named by remark or nickname, live updates without reloading,
images and voice shown, quick replies, assignment to an operator and WeChat's 48-hour window on every thread."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Max, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import RelatedDropdownFilter

from accounts.models import Interaction
from content.models import MessageTemplate
from wechat_crm.admin_filters import RangeDateTimeFilter
from wechat_crm.admin_lists import QuickCheckboxMixin
from wechat_crm.exceptions import ApplicationError
from wechat_crm.paginators import EstimatedCountPaginator
from wechat_crm.wechat.errors import WeChatError

from . import selectors, services
from .models import Conversation, QuickReply

WINDOW = services.MESSAGE_WINDOW


class WaitingFilter(admin.SimpleListFilter):
    title = gettext_lazy("answered")
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [("yes", gettext_lazy("Waiting for an answer")), ("no", gettext_lazy("Answered"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(unanswered__gt=0)
        if self.value() == "no":
            return queryset.filter(unanswered=0)
        return queryset


class AssignedFilter(admin.SimpleListFilter):
    title = gettext_lazy("assigned to")
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", gettext_lazy("Me")), ("nobody", gettext_lazy("Nobody"))]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assigned_to=request.user)
        if self.value() == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        return queryset


def _duration(seconds: int) -> str:
    hours, rest = divmod(max(seconds, 0), 3600)
    return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": rest // 60}


@admin.register(Conversation)
class ConversationAdmin(QuickCheckboxMixin, ModelAdmin):
    """The inbox: unanswered conversations first; a conversation opens its thread."""

    list_display = ("name", "unanswered", "window", "assigned_to", "last_inbound_at", "last_outbound_at", "stage",
                    "score")  # fmt: skip
    list_display_links = None
    list_select_related = ("subscriber", "assigned_to")
    list_filter = (
        WaitingFilter,
        AssignedFilter,
        ("assigned_to", RelatedDropdownFilter),
        "subscriber__stage",
        ("last_inbound_at", RangeDateTimeFilter),
        ("last_outbound_at", RangeDateTimeFilter),
    )
    list_filter_submit = True
    search_fields = ("subscriber__remark", "subscriber__nickname", "subscriber__openid")
    search_help_text = gettext_lazy("Part of the remark or nickname, or the OpenID.")
    ordering = ("-unanswered", "-last_inbound_at")
    show_full_result_count = False
    paginator = EstimatedCountPaginator  # no count of the whole table (wechat_crm/paginators.py)
    actions = ["assign_to_me", "unassign"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=gettext_lazy("subscriber"), ordering="subscriber__remark")
    def name(self, obj: Conversation) -> str:
        url = reverse("admin:conversations_thread", args=[obj.pk])
        return format_html('<a class="conversation-link text-primary-600" href="{}">{}</a>', url, obj.subscriber)

    @admin.display(description=gettext_lazy("48-hour window"))
    def window(self, obj: Conversation) -> str:
        # From the conversation's own columns (no query per row): the last message opens 48 hours.
        if obj.last_inbound_at is None or obj.last_inbound_at + WINDOW <= timezone.now():
            return format_html('<span class="window-closed">{}</span>', _("closed"))
        left = int((obj.last_inbound_at + WINDOW - timezone.now()).total_seconds())
        return format_html('<span class="window-open">{}</span>', _("open, %(left)s left") % {"left": _duration(left)})

    @admin.display(description=gettext_lazy("stage"), ordering="subscriber__stage")
    def stage(self, obj):
        return obj.subscriber.get_stage_display()

    @admin.display(description=gettext_lazy("score"), ordering="subscriber__score")
    def score(self, obj):
        return obj.subscriber.score

    @admin.action(description=gettext_lazy("Assign the selected conversations to me"), permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            services.conversation_assign(conversation=conversation, to=request.user)
        self.message_user(request, _("%(count)d conversations assigned to you.") % {"count": len(queryset)})

    @admin.action(description=gettext_lazy("Unassign the selected conversations"), permissions=["change"])
    def unassign(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        for conversation in queryset:
            services.conversation_assign(conversation=conversation, to=None)
        self.message_user(request, _("%(count)d conversations unassigned.") % {"count": len(queryset)})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("live/", view(self.inbox_live_view), name="conversations_inbox_live"),
            path("<int:pk>/thread/", view(self.thread_view), name="conversations_thread"),
            path("<int:pk>/thread/live/", view(self.thread_live_view), name="conversations_thread_live"),
            path("<int:pk>/media/<int:interaction_id>/", view(self.media_view), name="conversations_media"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "live_url": reverse("admin:conversations_inbox_live")}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return redirect(reverse("admin:conversations_thread", args=[object_id]))

    # --- live updates -------------------------------------------------------------------------------------------
    def inbox_live_view(self, request: HttpRequest) -> JsonResponse:
        """What changes when a message arrives or a reply is sent: the inbox page reloads its list when it moves."""
        if not self.has_view_permission(request):
            return JsonResponse({"message": _("Not found.")}, status=404)
        agg = Conversation.objects.aggregate(inbound=Max("last_inbound_at"), outbound=Max("last_outbound_at"))
        waiting = Conversation.objects.filter(unanswered__gt=0).count()
        signature = f"{agg['inbound']}|{agg['outbound']}|{waiting}"
        return JsonResponse({"signature": hashlib.sha1(signature.encode()).hexdigest(), "unanswered": waiting})  # noqa: S324

    def _thread_context(self, request: HttpRequest, conversation: Conversation) -> dict:
        subscriber = conversation.subscriber
        items = selectors.thread_items(subscriber=subscriber)
        for item in items:
            media = item.get("media")
            if media:
                media["url"] = (
                    reverse("admin:conversations_media", args=[conversation.pk, media["interaction"]])
                    if media["media_id"]
                    else media["pic_url"]
                )
        window = selectors.window_state(subscriber=subscriber)
        window["left"] = _duration(window["seconds_left"])
        signature = json.dumps(
            [[i["key"], i.get("status", "")] for i in items] + [window["allowed"], window["remaining"]]
        )
        return {
            "conversation": conversation,
            "subscriber": subscriber,
            "thread": items,
            "window": window,
            "signature": hashlib.sha1(signature.encode()).hexdigest(),  # noqa: S324
        }

    def thread_live_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        conversation = Conversation.objects.select_related("subscriber").filter(pk=pk).first()
        if conversation is None or not self.has_view_permission(request, conversation):
            return JsonResponse({"message": _("Not found.")}, status=404)
        context = self._thread_context(request, conversation)
        if request.GET.get("signature") == context["signature"]:
            return JsonResponse({"signature": context["signature"], "changed": False})
        html = render_to_string("admin/conversations/thread_live.html", context, request=request)
        return JsonResponse({"signature": context["signature"], "changed": True, "html": html})

    def media_view(self, request: HttpRequest, pk: int, interaction_id: int) -> HttpResponse:
        """A subscriber's image or voice, fetched from WeChat through our gateway client (temporary media)."""
        conversation = get_object_or_404(Conversation, pk=pk)
        if not self.has_view_permission(request, conversation):
            return HttpResponse(status=404)
        interaction = get_object_or_404(Interaction, pk=interaction_id, subscriber_id=conversation.subscriber_id)
        if not interaction.media_id:
            return HttpResponse(status=404)
        try:
            content, content_type = selectors.interaction_media(interaction=interaction)
        except WeChatError as exc:
            return HttpResponse(str(exc), status=502, content_type="text/plain; charset=utf-8")
        response = HttpResponse(content, content_type=content_type)
        response["Cache-Control"] = "private, max-age=86400"
        return response

    # --- the thread ---------------------------------------------------------------------------------------------
    def thread_view(self, request: HttpRequest, pk: int):
        conversation = get_object_or_404(Conversation.objects.select_related("subscriber", "assigned_to"), pk=pk)
        subscriber = conversation.subscriber
        if not self.has_view_permission(request, conversation):
            return redirect("admin:index")
        can_change = self.has_change_permission(request, conversation)
        if request.method == "POST" and can_change:
            try:
                if "assign" in request.POST:
                    user_id = request.POST.get("assigned_to") or None
                    to = get_object_or_404(get_user_model(), pk=user_id) if user_id else None
                    services.conversation_assign(conversation=conversation, to=to)
                    self.message_user(request, _("The conversation is assigned."), messages.SUCCESS)
                elif request.POST.get("template") and "send_text" not in request.POST:
                    template = get_object_or_404(MessageTemplate, pk=request.POST["template"])
                    services.template_send(subscriber=subscriber, template=template, by=request.user)
                    self.message_user(request, _("The template message is queued."), messages.SUCCESS)
                else:
                    services.operator_reply(subscriber=subscriber, text=request.POST.get("text", ""), by=request.user)
                    self.message_user(request, _("The reply is queued."), messages.SUCCESS)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return redirect(reverse("admin:conversations_thread", args=[pk]))
        context = {
            **self.admin_site.each_context(request),
            **self._thread_context(request, conversation),
            "title": _("Conversation with %(name)s") % {"name": subscriber},
            "opts": self.model._meta,
            "can_change": can_change,
            "tags": list(subscriber.tags.values_list("name", flat=True)),
            # Operators send service notices only (the send policy refuses marketing templates from the inbox).
            "templates": MessageTemplate.objects.filter(purpose=MessageTemplate.Purpose.SERVICE).order_by("title")[
                :100
            ],
            "quick_replies": QuickReply.objects.all()[:50],
            "operators": get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")[:200],
            "live_url": reverse("admin:conversations_thread_live", args=[pk]),
            "since": timezone.now() - timedelta(seconds=1),
        }
        return TemplateResponse(request, "admin/conversations/thread.html", context)


@admin.register(QuickReply)
class QuickReplyAdmin(ModelAdmin):
    list_display = ("title", "text", "position")
    list_editable = ("position",)
    search_fields = ("title", "text")
