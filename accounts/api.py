"""API of subscribers (read, update, bulk tagging), interactions (read) and tags. Token or session authentication."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from wechat_crm.paginators import EstimatedCountPagination
from wechat_crm.permissions import WRITE_ADMIN, RolePermission

from . import selectors, subscribers, tagging
from .filters import InteractionFilter, SubscriberFilter
from .models import Subscriber, Tag
from .serializers import (
    BulkTagResultSerializer,
    BulkTagSerializer,
    InteractionSerializer,
    SubscriberSerializer,
    SubscriberUpdateSerializer,
    TagSerializer,
)


class SubscriberViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Subscribers, newest first, with their tags, custom attributes, preferences, remark and score. Filter by tag,
    stage, channel, follow date, following and score. PATCH changes the remark, the tags, the attributes (merged)
    and the preferences; POST /api/subscribers/tags/ tags or untags many at once. Admins write."""

    serializer_class = SubscriberSerializer
    filterset_class = SubscriberFilter
    permission_classes = [RolePermission]
    write_roles = WRITE_ADMIN
    queryset = Subscriber.objects.none()  # the model, for the permission rules and the schema
    pagination_class = EstimatedCountPagination  # no COUNT(*) of a million subscribers per page
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "patch", "post", "head", "options"]

    def get_queryset(self):
        return selectors.subscribers_list().prefetch_related("tags", "topics_preferred", "topics_opted_out")

    @extend_schema(request=SubscriberUpdateSerializer, responses=SubscriberSerializer)
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        subscriber = self.get_object()
        params = SubscriberUpdateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = dict(params.validated_data)
        preferences = data.pop("preferences", {})
        if "max_pushes_per_week" in preferences:
            data["max_pushes_per_week"] = preferences.pop("max_pushes_per_week")
        subscribers.subscriber_update(subscriber=subscriber, **data, **preferences)
        return Response(SubscriberSerializer(self.get_queryset().get(pk=subscriber.pk)).data)

    @extend_schema(request=BulkTagSerializer, responses=BulkTagResultSerializer)
    @action(detail=False, methods=["post"], url_path="tags")
    def bulk_tag(self, request: Request) -> Response:
        """Tag (`add`) or untag (`remove`) up to 10,000 subscribers by id or openid. Linked tags reach WeChat with
        the next tag sync, as tags set in the admin."""
        params = BulkTagSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        result = subscribers.subscribers_tag_bulk(
            tag_name=data["tag"],
            action=data["action"],
            ids=data.get("subscribers", []),
            openids=data.get("openids", []),
        )
        return Response(BulkTagResultSerializer(result).data)


class InteractionListApi(generics.ListAPIView):
    """Messages and events received on the callback, newest first. Filter with ?openid= and ?kind=."""

    serializer_class = InteractionSerializer
    filterset_class = InteractionFilter
    pagination_class = EstimatedCountPagination  # no COUNT(*) of ten million rows per page

    def get_queryset(self):
        return selectors.interactions_list()


class TagViewSet(viewsets.ModelViewSet):
    """Tags on subscribers, with their subscriber count. Admins create, rename and delete them: a tag linked to
    WeChat is renamed or deleted there too; new tags and memberships reach WeChat with the next tag sync."""

    serializer_class = TagSerializer
    permission_classes = [RolePermission]
    write_roles = WRITE_ADMIN
    queryset = Tag.objects.none()  # the model, for the permission rules and the schema
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.tags_list()

    def perform_create(self, serializer) -> None:
        tag = tagging.tag_create(name=serializer.validated_data["name"])
        serializer.instance = selectors.tags_list().get(pk=tag.pk)

    def perform_update(self, serializer) -> None:
        tag = serializer.instance
        if "name" in serializer.validated_data:
            tag = tagging.tag_rename(tag=tag, name=serializer.validated_data["name"])
        serializer.instance = selectors.tags_list().get(pk=tag.pk)

    def perform_destroy(self, instance) -> None:
        tagging.tag_delete(tag=instance)
