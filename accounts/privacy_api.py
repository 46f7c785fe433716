"""The API of personal-data rights: GET /api/subscribers/{id}/export/ and POST /api/subscribers/{id}/erase/.

Admin role only (the role groups of wechat_crm.permissions; a superuser is an admin). Both are audited.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import privacy
from .models import Subscriber


def user_is_admin(user: Any) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    try:
        from wechat_crm.permissions import ADMIN, user_roles
    except ImportError:  # the roles module not present: only superusers and the "admin" group
        return user.groups.filter(name="admin").exists()
    return ADMIN in user_roles(user)


class IsAdminRole(permissions.BasePermission):
    message = _("Only the admin role may export or erase a subscriber's personal data.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return user_is_admin(request.user)


class SubscriberExportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAdminRole]
    throttle_scope = "exports"

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Everything held about one subscriber (JSON)")
    def get(self, request: Request, pk: int) -> Response:
        subscriber = get_object_or_404(Subscriber, pk=pk)
        return Response(privacy.subscriber_export(subscriber=subscriber, by=request.user, via="api"))


class SubscriberEraseApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsAdminRole]

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "SubscriberErased", {"id": serializers.IntegerField(), "erased": serializers.BooleanField()}
            )
        },
        summary="Erase a subscriber: profile cleared, interactions anonymised, excluded from all future sends",
    )
    def post(self, request: Request, pk: int) -> Response:
        subscriber = get_object_or_404(Subscriber, pk=pk)
        privacy.subscriber_erase(subscriber=subscriber, by=request.user, via="api")
        return Response({"id": subscriber.pk, "erased": True})
