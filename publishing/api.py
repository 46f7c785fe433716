"""REST API of publishing: the media library, drafts, publishing, news options, previews and WeChat's statistics.

Reads for any authenticated user; writes for operators and admins (wechat_crm.permissions). Every refusal of a
WeChat rule is a JSON 4xx naming it, before any call to WeChat.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.plumbing import build_array_type, build_object_type
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from content.api import IsStaffOrReadOnly
from content.models import Article, Push
from content.services import deliveries

from . import selectors
from .models import ArticleWeChat, PushNews
from .serializers import (
    ArticleWeChatSerializer,
    CompareSerializer,
    DraftSerializer,
    MediaAssetSerializer,
    PreviewSerializer,
    PublicationSerializer,
    PushNewsSerializer,
    StatsRangeSerializer,
)
from .services import drafts, media, publish, stats

PERMISSIONS = [permissions.IsAuthenticated, IsStaffOrReadOnly]


class MediaViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """The media library: upload an image (multipart: kind image|thumb|body, file, title), checked against WeChat's
    formats and sizes; `upload` sends it to WeChat (permanent material or body image); `sync` reads WeChat's list."""

    serializer_class = MediaAssetSerializer
    permission_classes = PERMISSIONS
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        return selectors.media_list(kind=self.request.query_params.get("kind") or None)

    def perform_create(self, serializer) -> None:
        upload = serializer.validated_data["file"]
        upload.seek(0)
        serializer.instance = media.media_create(
            kind=serializer.validated_data.get("kind", "image"), data=upload.read(), filename=upload.name,
            title=serializer.validated_data.get("title", ""), by=self.request.user,
        )  # fmt: skip

    @extend_schema(request=None, responses=MediaAssetSerializer)
    @action(detail=True, methods=["post"])
    def upload(self, request: Request, pk: str | None = None) -> Response:
        from wechat_crm.wechat.errors import WeChatError

        from .errors import WeChatRefused

        try:
            asset = media.media_upload(asset=self.get_object())
        except WeChatError as exc:
            raise WeChatRefused(_("WeChat refused the image: %(error)s") % {"error": exc.message}) from exc
        return Response(self.get_serializer(asset).data)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=False, methods=["post"])
    def sync(self, request: Request) -> Response:
        return Response(media.media_sync())


class DraftViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """WeChat drafts: POST {"articles": [ids]} (1 to 8, one multi-article message) makes and uploads one
    (covers and body images first); `upload` brings it up to date (article by article); DELETE deletes it on
    WeChat (a sent or published draft is kept)."""

    serializer_class = DraftSerializer
    permission_classes = PERMISSIONS

    def get_queryset(self):
        return selectors.drafts_list()

    def perform_create(self, serializer) -> None:
        serializer.instance = drafts.draft_for_articles(articles=serializer.validated_data["articles"])

    def perform_destroy(self, instance) -> None:
        drafts.draft_delete(draft=instance)

    @extend_schema(request=None, responses=DraftSerializer)
    @action(detail=True, methods=["post"])
    def upload(self, request: Request, pk: str | None = None) -> Response:
        return Response(self.get_serializer(drafts.draft_upload(draft=self.get_object())).data)


class PublicationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PublicationSerializer
    permission_classes = PERMISSIONS

    def get_queryset(self):
        return selectors.publications_list()


class ArticleWeChatView(APIView):
    """An article's WeChat settings (GET, PUT) and publishing it (POST .../publish/)."""

    permission_classes = PERMISSIONS

    @extend_schema(responses=ArticleWeChatSerializer)
    def get(self, request: Request, pk: int) -> Response:
        article = get_object_or_404(Article, pk=pk)
        options = ArticleWeChat.objects.filter(article=article).first() or ArticleWeChat(article=article)
        return Response(ArticleWeChatSerializer(options).data)

    @extend_schema(request=ArticleWeChatSerializer, responses=ArticleWeChatSerializer)
    def put(self, request: Request, pk: int) -> Response:
        article = get_object_or_404(Article, pk=pk)
        options, _created = ArticleWeChat.objects.get_or_create(article=article)
        serializer = ArticleWeChatSerializer(options, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class ArticlePublishView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(request=None, responses=PublicationSerializer)
    def post(self, request: Request, pk: int) -> Response:
        """Publish (发布) the article on WeChat: its draft, then WeChat's publishing. 502 with WeChat's refusal."""
        publication = publish.article_publish(article=get_object_or_404(Article, pk=pk), by=request.user)
        return Response(PublicationSerializer(publication).data, status=202)


class PushNewsView(APIView):
    """A news push's options (GET, PUT), its preview in WeChat (POST .../preview/) and its WeChat report."""

    permission_classes = PERMISSIONS

    @extend_schema(responses=PushNewsSerializer)
    def get(self, request: Request, pk: int) -> Response:
        push = get_object_or_404(Push, pk=pk)
        return Response(PushNewsSerializer(PushNews.objects.filter(push=push).first() or PushNews(push=push)).data)

    @extend_schema(request=PushNewsSerializer, responses=PushNewsSerializer)
    def put(self, request: Request, pk: int) -> Response:
        push = get_object_or_404(Push, pk=pk)
        if push.status not in (Push.Status.DRAFT, Push.Status.SCHEDULED):
            raise ValidationError({"push": [_("Only a draft or scheduled push can be edited.")]})
        options, _created = PushNews.objects.get_or_create(push=push)
        serializer = PushNewsSerializer(options, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


class PushPreviewView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(request=PreviewSerializer, responses={200: dict})
    def post(self, request: Request, pk: int) -> Response:
        """ "Send a test to me" in WeChat: the news push's draft to your openid (operator profile) or a WeChat ID."""
        data = PreviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        push = get_object_or_404(Push, pk=pk)
        msg_id = deliveries.push_send_test(push=push, user=request.user, wxname=data.validated_data["wxname"])
        return Response({"msg_id": msg_id})


class PushWeChatReportView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(responses={200: dict})
    def get(self, request: Request, pk: int) -> Response:
        """Our report of the push (clicks, unfollows, conversions) with WeChat's reads and shares beside it."""
        return Response(selectors.push_report_with_wechat(push=get_object_or_404(Push, pk=pk)))


class StatsPullView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(request=StatsRangeSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        """Pull WeChat's statistics over {"begin", "end"} (dates before today) now."""
        data = StatsRangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            counts = stats.stats_pull(begin=data.validated_data["begin"], end=data.validated_data["end"])
        except ValueError as exc:
            raise ValidationError({"end": [str(exc)]}) from exc
        return Response(counts)


class StatsAccountView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(parameters=[StatsRangeSerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        """The account's followers by source (new, cancelled, net, cumulative), reads and shares over ?begin=&end=."""
        data = StatsRangeSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        return Response(selectors.account_figures(begin=data.validated_data["begin"], end=data.validated_data["end"]))


class StatsCompareView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(parameters=[CompareSerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        """The last 7 or 28 days (?days=) against the 7 or 28 before, as in WeChat's console."""
        data = CompareSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        return Response(selectors.period_compare(days=int(data.validated_data["days"])))


class StatsTopicsView(APIView):
    permission_classes = PERMISSIONS

    @extend_schema(responses={200: build_array_type(build_object_type(additionalProperties=True))})
    def get(self, request: Request) -> Response:
        """Per topic: our figures and WeChat's reads and shares of its articles' pushes."""
        return Response(selectors.topic_wechat_figures())
