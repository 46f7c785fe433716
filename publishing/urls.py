"""The publishing API under /api/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("media", api.MediaViewSet, basename="media")
router.register("drafts", api.DraftViewSet, basename="draft")
router.register("publications", api.PublicationViewSet, basename="publication")

urlpatterns = [
    path("", include(router.urls)),
    path("contents/<int:pk>/wechat/", api.ArticleWeChatView.as_view(), name="content-wechat"),
    path("contents/<int:pk>/wechat/publish/", api.ArticlePublishView.as_view(), name="content-wechat-publish"),
    path("pushes/<int:pk>/news/", api.PushNewsView.as_view(), name="push-news"),
    path("pushes/<int:pk>/preview/", api.PushPreviewView.as_view(), name="push-preview"),
    path("pushes/<int:pk>/wechat-report/", api.PushWeChatReportView.as_view(), name="push-wechat-report"),
    path("wechat-stats/pull/", api.StatsPullView.as_view(), name="wechat-stats-pull"),
    path("wechat-stats/account/", api.StatsAccountView.as_view(), name="wechat-stats-account"),
    path("wechat-stats/compare/", api.StatsCompareView.as_view(), name="wechat-stats-compare"),
    path("wechat-stats/topics/", api.StatsTopicsView.as_view(), name="wechat-stats-topics"),
]
