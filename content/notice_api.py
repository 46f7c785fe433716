"""REST API of subscription notices (订阅通知): the account's notice templates, WeChat's public library, and people's
consents (read only: consent comes from WeChat's popup and change events, never from us).

    GET    /api/notice-templates/                  the account's templates (`?on_wechat=true`)
    POST   /api/notice-templates/sync/             fetch them from WeChat
    POST   /api/notice-templates/library-add/      {"tid", "kid_list", "scene_desc"}: add a library title
    DELETE /api/notice-templates/<id>/             delete it on WeChat
    GET    /api/notice-templates/library/          a page of WeChat's library (`?start=&limit=`)
    GET    /api/notice-templates/library/<tid>/    a library title's keywords
    GET    /api/notice-consents/                   consents (`?subscriber=&template_id=&accepted=`)
    GET    /api/notice-consents/history/           decisions (`?subscriber=&template_id=`)

Marketers, operators and admins read; operators and admins manage templates (wechat_crm.permissions).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from wechat_crm.permissions import WRITE_OPERATOR, RolePermission

from .models import NoticeConsent, NoticeConsentChange, NoticeTemplate
from .services import notices


class NoticeTemplateKeywordSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("The keyword's key in a notice's values, e.g. thing1."))
    name = serializers.CharField()
    rule = serializers.CharField(help_text=_("WeChat's value rule: thing, number, time, amount, phrase ..."))


class NoticeTemplateSerializer(serializers.ModelSerializer):
    keywords = NoticeTemplateKeywordSerializer(many=True, read_only=True)

    class Meta:
        model = NoticeTemplate
        fields = ["id", "template_id", "title", "kind", "content", "example", "keywords", "library_tid", "scene_desc",
                  "on_wechat", "synced_at", "created_at"]  # fmt: skip
        read_only_fields = fields


class NoticeLibraryAddSerializer(serializers.Serializer):
    tid = serializers.CharField(max_length=32, help_text=_("The library title's id (GET .../library/)."))
    kid_list = serializers.ListField(child=serializers.IntegerField(), help_text=_("2 to 5 keyword ids, in order."))
    scene_desc = serializers.CharField(max_length=64, required=False, allow_blank=True, default="",
                                       help_text=_("The service scene, at most 15 characters."))  # fmt: skip


class NoticeSyncSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    gone = serializers.IntegerField()


class NoticeCategorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class NoticeLibraryTitleSerializer(serializers.Serializer):
    tid = serializers.CharField()
    title = serializers.CharField()
    type = serializers.IntegerField(help_text=_("2: one-time, 3: long-term."))
    category_id = serializers.CharField()


class NoticeLibrarySerializer(serializers.Serializer):
    categories = NoticeCategorySerializer(many=True)
    count = serializers.IntegerField()
    titles = NoticeLibraryTitleSerializer(many=True)


class NoticeKeywordSerializer(serializers.Serializer):
    kid = serializers.IntegerField()
    name = serializers.CharField()
    example = serializers.CharField()
    rule = serializers.CharField()


class NoticeConsentSerializer(serializers.ModelSerializer):
    openid = serializers.CharField(source="subscriber.openid", read_only=True)

    class Meta:
        model = NoticeConsent
        fields = ["id", "subscriber", "openid", "template_id", "accepted", "credits", "changed_at"]
        read_only_fields = fields


class NoticeConsentChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = NoticeConsentChange
        fields = ["id", "subscriber", "template_id", "decision", "popup_scene", "at"]
        read_only_fields = fields


class NoticePermission(RolePermission):
    default_write_roles = WRITE_OPERATOR


class NoticeTemplateViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """The account's subscription-notice templates, as WeChat holds them (created by sync or by a library add)."""

    serializer_class = NoticeTemplateSerializer
    permission_classes = [permissions.IsAuthenticated, NoticePermission]
    queryset = NoticeTemplate.objects.all()

    def get_queryset(self):
        qs = NoticeTemplate.objects.order_by("title", "id")
        on_wechat = self.request.query_params.get("on_wechat")
        if on_wechat in ("true", "false"):
            qs = qs.filter(on_wechat=on_wechat == "true")
        return qs

    def perform_destroy(self, instance: NoticeTemplate) -> None:
        notices.notice_template_delete(template=instance)

    @extend_schema(request=None, responses=NoticeSyncSerializer)
    @action(detail=False, methods=["post"])
    def sync(self, request: Request) -> Response:
        return Response(notices.notice_templates_sync())

    @extend_schema(request=NoticeLibraryAddSerializer, responses={201: NoticeTemplateSerializer})
    @action(detail=False, methods=["post"], url_path="library-add")
    def library_add(self, request: Request) -> Response:
        data = NoticeLibraryAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        template = notices.notice_template_add(**data.validated_data)
        return Response(NoticeTemplateSerializer(template).data, status=201)

    @extend_schema(
        parameters=[OpenApiParameter("start", int), OpenApiParameter("limit", int)],
        responses=NoticeLibrarySerializer,
    )
    @action(detail=False, methods=["get"])
    def library(self, request: Request) -> Response:
        try:
            start = max(0, int(request.query_params.get("start", 0)))
            limit = int(request.query_params.get("limit", 30))
        except ValueError:
            start, limit = 0, 30
        return Response(notices.notice_library(start=start, limit=limit))

    @extend_schema(responses=NoticeKeywordSerializer(many=True))
    @action(detail=False, methods=["get"], url_path=r"library/(?P<tid>[0-9A-Za-z_-]{1,32})")
    def library_keywords(self, request: Request, tid: str) -> Response:
        return Response(notices.notice_library_keywords(tid=tid))


class NoticeConsentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """People's consent to notice templates, recorded from WeChat's popup and change events (read only)."""

    serializer_class = NoticeConsentSerializer
    queryset = NoticeConsent.objects.all()

    def _filtered(self, qs):
        params = self.request.query_params
        if params.get("subscriber", "").isdigit():
            qs = qs.filter(subscriber_id=int(params["subscriber"]))
        if params.get("template_id"):
            qs = qs.filter(template_id=params["template_id"])
        return qs

    def get_queryset(self):
        qs = self._filtered(NoticeConsent.objects.select_related("subscriber").order_by("-changed_at", "-id"))
        accepted = self.request.query_params.get("accepted")
        if accepted in ("true", "false"):
            qs = qs.filter(accepted=accepted == "true")
        return qs

    @extend_schema(
        parameters=[OpenApiParameter("subscriber", int), OpenApiParameter("template_id", str)],
        responses=NoticeConsentChangeSerializer(many=True),
    )
    @action(detail=False, methods=["get"])
    def history(self, request: Request) -> Response:
        qs = self._filtered(NoticeConsentChange.objects.order_by("-at", "-id"))
        page = self.paginate_queryset(qs)
        if page is not None:
            return self.get_paginated_response(NoticeConsentChangeSerializer(page, many=True).data)
        return Response(NoticeConsentChangeSerializer(qs, many=True).data)
