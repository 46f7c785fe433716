"""Read API for a first look at subscribers and interactions. Token or session authentication."""

from rest_framework import generics, mixins, permissions, viewsets

from content.api import IsStaffOrReadOnly
from wechat_crm.permissions import WRITE_ADMIN

from . import selectors, tagging
from .filters import InteractionFilter, SubscriberFilter
from .serializers import InteractionSerializer, SubscriberSerializer, TagSerializer


class SubscriberListApi(generics.ListAPIView):
    """Subscribers, newest first. Filter with ?openid= and ?is_following=true|false."""

    serializer_class = SubscriberSerializer
    filterset_class = SubscriberFilter

    def get_queryset(self):
        return selectors.subscribers_list()


class InteractionListApi(generics.ListAPIView):
    """Messages and events received on the callback, newest first. Filter with ?openid= and ?kind=."""

    serializer_class = InteractionSerializer
    filterset_class = InteractionFilter

    def get_queryset(self):
        return selectors.interactions_list()


class TagViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Tags on subscribers, with their subscriber count. Staff users create them (synced to WeChat on the next
    tag sync)."""

    serializer_class = TagSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]
    write_roles = WRITE_ADMIN

    def get_queryset(self):
        return selectors.tags_list()

    def perform_create(self, serializer) -> None:
        tag = tagging.tag_create(name=serializer.validated_data["name"])
        serializer.instance = selectors.tags_list().get(pk=tag.pk)
