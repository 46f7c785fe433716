"""REST API of the content library: topics, contents (articles) and message templates.

Marketers, operators and admins read; operators and admins write (wechat_crm.permissions).
Articles are published and unpublished through their own actions, never by writing `status`.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from wechat_crm.permissions import WRITE_OPERATOR, RolePermission

from . import selectors, services
from .filters import ArticleFilter, MessageTemplateFilter
from .models import Segment, Topic
from .serializers import (
    SEGMENT_RULES_EXAMPLE,
    ArticleSerializer,
    MessageTemplateSerializer,
    PushReportSerializer,
    PushScheduleSerializer,
    PushSerializer,
    SegmentSerializer,
    TopicSerializer,
)
from .services import deliveries, pushes, segments


class IsStaffOrReadOnly(RolePermission):
    """The role rules of wechat_crm.permissions, writes for operators and admins unless the view names its own
    `write_roles`."""

    default_write_roles = WRITE_OPERATOR


class _ListRetrieveCreateUpdate(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]


class TopicViewSet(mixins.DestroyModelMixin, _ListRetrieveCreateUpdate):
    """Topics: what articles are about; the unit of subscribers' preferences and opt-outs."""

    serializer_class = TopicSerializer
    queryset = Topic.objects.all()

    def perform_destroy(self, instance: Topic) -> None:
        services.topic_delete(topic=instance)

    def perform_create(self, serializer) -> None:
        serializer.instance = services.topic_create(**serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.topic_update(topic=serializer.instance, data=serializer.validated_data)


class ArticleViewSet(_ListRetrieveCreateUpdate):
    """Articles (contents): Markdown bodies served at /c/<slug>/ once published. Filter by ?topic=<slug>, ?status=."""

    serializer_class = ArticleSerializer
    filterset_class = ArticleFilter

    def get_queryset(self):
        return selectors.articles_list()

    def perform_create(self, serializer) -> None:
        serializer.instance = services.article_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.article_update(article=serializer.instance, data=serializer.validated_data)

    @extend_schema(request=None, responses=ArticleSerializer)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        """Publish the article: its page is served from now on. 400 if it is already published or has no body."""
        article = services.article_publish(article=self.get_object())
        return Response(self.get_serializer(article).data)

    @extend_schema(request=None, responses=ArticleSerializer)
    @action(detail=True, methods=["post"])
    def unpublish(self, request: Request, pk: str | None = None) -> Response:
        """Back to draft: the page answers 404 again (staff still see a preview)."""
        article = services.article_unpublish(article=self.get_object())
        return Response(self.get_serializer(article).data)


class MessageTemplateViewSet(_ListRetrieveCreateUpdate):
    """WeChat template messages. Saving checks every field's template (syntax, tags, variables): 400 with the
    problems per field."""

    serializer_class = MessageTemplateSerializer
    filterset_class = MessageTemplateFilter

    def get_queryset(self):
        return selectors.templates_list()

    def perform_create(self, serializer) -> None:
        serializer.instance = services.template_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = services.template_update(template=serializer.instance, data=serializer.validated_data)


SEGMENT_EXAMPLES = [
    OpenApiExample(
        "Engaged tagged followers active lately",
        value={
            "name": "Engaged VIPs, active or in Hangzhou",
            "description": "Tagged vip or trial, engaged or interactive, active in 30 days or living in Hangzhou.",
            "rules": SEGMENT_RULES_EXAMPLE,
        },
        request_only=True,
    ),
    OpenApiExample(
        "The segment with its live count",
        value={
            "id": 4,
            "name": "Engaged VIPs, active or in Hangzhou",
            "description": "Tagged vip or trial, engaged or interactive, active in 30 days or living in Hangzhou.",
            "rules": SEGMENT_RULES_EXAMPLE,
            "recipients": 1280,
            "created_at": "2026-03-02T10:00:00+08:00",
            "updated_at": "2026-03-02T10:00:00+08:00",
        },
        response_only=True,
    ),
]


@extend_schema_view(
    create=extend_schema(examples=SEGMENT_EXAMPLES),
    partial_update=extend_schema(examples=SEGMENT_EXAMPLES),
    update=extend_schema(examples=SEGMENT_EXAMPLES),
    retrieve=extend_schema(examples=SEGMENT_EXAMPLES[1:]),
)
class SegmentViewSet(_ListRetrieveCreateUpdate):
    """Segments: who receives a push. `rules` is validated on save (400 naming the bad rule); `recipients` is the
    live count of followers matching it."""

    serializer_class = SegmentSerializer
    queryset = Segment.objects.all()

    def perform_create(self, serializer) -> None:
        if "rules" not in serializer.validated_data:  # optional on update only: a new segment needs its rules
            raise ValidationError({"rules": [_("This field is required.")]})
        serializer.instance = segments.segment_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = segments.segment_update(segment=serializer.instance, data=serializer.validated_data)


class PushViewSet(_ListRetrieveCreateUpdate):
    """Pushes. Create and edit drafts here; schedule, cancel, test and read the report through the actions."""

    serializer_class = PushSerializer
    filterset_fields = ["status", "channel"]

    def get_queryset(self):
        return selectors.pushes_list()

    def perform_create(self, serializer) -> None:
        serializer.instance = pushes.push_create(by=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        serializer.instance = pushes.push_update(push=serializer.instance, data=serializer.validated_data)

    @extend_schema(request=PushScheduleSerializer, responses=PushSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: str | None = None) -> Response:
        """Schedule a draft (or move a scheduled push) to `send_at`. 400 without a segment or content, 409 when the
        push is past scheduling."""
        data = PushScheduleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        push = pushes.push_schedule(push=self.get_object(), send_at=data.validated_data.get("send_at"), by=request.user)
        push.refresh_from_db()
        return Response(self.get_serializer(push).data)

    @extend_schema(request=None, responses=PushSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel; a send in progress stops before its next page. 409 when the push is already final."""
        push = pushes.push_cancel(push=self.get_object())
        push.refresh_from_db()
        return Response(self.get_serializer(push).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Send the rendered message to your own openid (your operator profile). 400 without one."""
        msgid = deliveries.push_send_test(push=self.get_object(), user=request.user)
        return Response({"msgid": msgid})

    @extend_schema(responses=PushReportSerializer)
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        """Recipients, skips by reason, sent, delivered, failed, unknown, clicks, click-through rate and unfollows
        within 24 h / 72 h against the account's baseline."""
        return Response(PushReportSerializer(selectors.push_report(push=self.get_object())).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def progress(self, request: Request, pk: str | None = None) -> Response:
        """Counts by delivery status while it sends."""
        return Response(deliveries.push_progress(push=self.get_object()))

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}}, filters=False)
    @action(detail=False, methods=["get"], url_path="report-by-topic")
    def report_by_topic(self, request: Request) -> Response:
        """Per content topic: pushes, recipients, clicks, click-through and unfollows against the baseline."""
        return Response(selectors.topic_report())
