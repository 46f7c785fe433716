"""API: a subscriber's lead score (with its recent entries) and the customer-service window; the conversation set-up
(auto-replies, menus, journeys with their steps and report, score rules)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Subscriber
from wechat_crm.permissions import WRITE_ADMIN, RolePermission

from . import editing, menus
from .errors import MenuInvalid
from .journeys.reports import journey_report
from .models import AutoReplyRule, Journey, JourneyStep, Menu, ScoreRule
from .services import cs_window


class ScoreEntrySerializer(serializers.Serializer):
    points = serializers.IntegerField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class CsWindowSerializer(serializers.Serializer):
    allowed = serializers.BooleanField(help_text=_("Whether WeChat accepts a customer-service message now."))
    remaining = serializers.IntegerField(help_text=_("How many more customer-service messages are allowed."))
    reason = serializers.CharField(help_text=_("Why not, when not allowed (empty otherwise)."))


class SubscriberScoreSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    score = serializers.IntegerField()
    entries = ScoreEntrySerializer(many=True, help_text=_("The 20 most recent score entries, newest first."))
    window = CsWindowSerializer()


class SubscriberScoreApi(APIView):
    permission_classes = [RolePermission]

    @extend_schema(responses=SubscriberScoreSerializer)
    def get(self, request, pk: int):
        subscriber = get_object_or_404(Subscriber, pk=pk)
        entries = subscriber.score_entries.order_by("-at", "-id").values("points", "reason", "at")[:20]
        window = cs_window(subscriber)
        data = {
            "id": subscriber.pk,
            "score": subscriber.score,
            "entries": list(entries),
            "window": {"allowed": window.allowed, "remaining": window.remaining, "reason": window.reason},
        }
        return Response(SubscriberScoreSerializer(data).data)


# --- The conversation set-up: auto-replies, menus, journeys and their steps, score rules (admins write) -----------


class AutoReplyRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = AutoReplyRule
        fields = [
            "id",
            "name",
            "is_active",
            "priority",
            "trigger",
            "pattern",
            "channel",
            "reply_kind",
            "reply_text",
            "media_id",
            "article",
            "template",
            "active_from",
            "active_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class MenuSerializer(serializers.ModelSerializer):
    buttons = serializers.ListField(
        child=serializers.DictField(),
        help_text=_(
            'WeChat\'s menu: up to 3 buttons {"type", "name", "key" | "url"} or {"name", "sub_button": [...]}.'
        ),
    )

    class Meta:
        model = Menu
        fields = ["id", "name", "buttons", "published_at", "publish_error", "created_at", "updated_at"]
        read_only_fields = ["id", "published_at", "publish_error", "created_at", "updated_at"]


class MenuValidateSerializer(serializers.Serializer):
    buttons = serializers.ListField(child=serializers.DictField(), help_text=_("The buttons to check."))


class JourneyStepSerializer(serializers.ModelSerializer):
    notice_values = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=200),
        required=False,
        help_text=_("The subscription notice's value per keyword, checked against WeChat's rules."),
    )

    class Meta:
        model = JourneyStep
        fields = ["id", "journey", "position", "wait", "condition", "condition_tag", "condition_topic",
                  "condition_value", "on_fail", "action", "text", "content", "article", "template", "notice_template",
                  "notice_values", "tag", "score_delta"]  # fmt: skip
        read_only_fields = ["id"]


class JourneySerializer(serializers.ModelSerializer):
    steps = JourneyStepSerializer(many=True, read_only=True)

    class Meta:
        model = Journey
        fields = ["id", "name", "is_active", "trigger", "channel", "topic", "stage", "dormant_days", "period",
                  "created_at", "steps"]  # fmt: skip
        read_only_fields = ["id", "created_at", "steps"]


class JourneyStepReportSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    step = serializers.CharField(help_text=_("What the step does."))
    done = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skip_reasons = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=_('Skipped runs by reason: the send policy\'s code (e.g. "paused", "no_channel") or "condition".'),
    )


class JourneyReportSerializer(serializers.Serializer):
    entered = serializers.IntegerField()
    completed = serializers.IntegerField()
    stopped = serializers.IntegerField()
    active = serializers.IntegerField()
    converted = serializers.IntegerField()
    steps = JourneyStepReportSerializer(many=True)


class ScoreRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScoreRule
        fields = ["id", "kind", "points"]
        read_only_fields = ["id"]


class _SetupViewSet(viewsets.ModelViewSet):
    """CRUD through the service functions of conversations.editing."""

    permission_classes = [RolePermission]
    write_roles = WRITE_ADMIN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # The service functions, as staticmethods (not `delete`: DRF would take a class attribute of a method's name for
    # its handler), and the keyword they take the row by.
    save_service: Any = None
    delete_service: Any = None
    kwarg = ""

    def perform_create(self, serializer) -> None:
        serializer.instance = self.save_service(data=serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = self.save_service(**{self.kwarg: serializer.instance}, data=serializer.validated_data)

    def perform_destroy(self, instance) -> None:
        self.delete_service(**{self.kwarg: instance})


class AutoReplyRuleViewSet(_SetupViewSet):
    """Auto-reply rules: keyword, regular expression, menu click, follow or scan, with the reply to give."""

    serializer_class = AutoReplyRuleSerializer
    queryset = AutoReplyRule.objects.order_by("-priority", "id")
    filterset_fields = ["is_active", "trigger", "reply_kind", "channel"]
    save_service, delete_service = staticmethod(editing.auto_reply_save), staticmethod(editing.auto_reply_delete)
    kwarg = "rule"


class MenuViewSet(_SetupViewSet):
    """The custom menu: saved checked as WeChat checks it; `publish` sends it to WeChat, `validate` only checks."""

    serializer_class = MenuSerializer
    queryset = Menu.objects.order_by("-updated_at", "-id")
    save_service, delete_service = staticmethod(editing.menu_save), staticmethod(editing.menu_delete)
    kwarg = "menu"

    @extend_schema(request=MenuValidateSerializer, responses=MenuValidateSerializer)
    @action(detail=False, methods=["post"])
    def validate(self, request: Request) -> Response:
        """The buttons in WeChat's form, or a 400 naming the first problem ("button 2.3: ...")."""
        params = MenuValidateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            buttons = menus.menu_validate(params.validated_data["buttons"])
        except MenuInvalid as exc:
            raise ValidationError({"buttons": [exc.message]}) from exc
        return Response({"buttons": buttons})

    @extend_schema(request=None, responses=MenuSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        """Publish the menu to WeChat (the client's menu_create); WeChat's refusal is a 400 with its errcode in the
        message."""
        menu = menus.menu_publish(menu=self.get_object())
        return Response(MenuSerializer(menu).data)


class JourneyViewSet(_SetupViewSet):
    """Journeys: a trigger (follow, topic click, stage, conversion, dormant) and steps run by the worker."""

    serializer_class = JourneySerializer
    queryset = Journey.objects.prefetch_related("steps").order_by("id")
    filterset_fields = ["is_active", "trigger"]
    save_service, delete_service = staticmethod(editing.journey_save), staticmethod(editing.journey_delete)
    kwarg = "journey"

    @extend_schema(responses=JourneyReportSerializer)
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        """Entered, completed, stopped, active and converted enrollments, and each step's done / skipped runs."""
        return Response(JourneyReportSerializer(journey_report(self.get_object())).data)


class JourneyStepViewSet(_SetupViewSet):
    """A journey's steps (filter with ?journey=<id>), run in `position` order."""

    serializer_class = JourneyStepSerializer
    queryset = JourneyStep.objects.order_by("journey_id", "position", "id")
    filterset_fields = ["journey"]
    save_service, delete_service = staticmethod(editing.journey_step_save), staticmethod(editing.journey_step_delete)
    kwarg = "step"


class ScoreRuleViewSet(_SetupViewSet):
    """Lead score rules: the points an interaction kind is worth."""

    serializer_class = ScoreRuleSerializer
    queryset = ScoreRule.objects.order_by("kind")
    save_service, delete_service = staticmethod(editing.score_rule_save), staticmethod(editing.score_rule_delete)
    kwarg = "rule"
