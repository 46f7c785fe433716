"""API: a subscriber's lead score (with its recent entries) and the customer-service window."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Subscriber
from wechat_crm.permissions import RolePermission

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
