"""Public pages at the site root (`urlpatterns`) and the API under /api/ (`api_urlpatterns`)."""

import re

from django.conf import settings
from django.conf.urls.static import static
from django.urls import include, path, re_path
from django.views.static import serve
from rest_framework.routers import SimpleRouter

from . import api, notice_api, views

app_name = "content"


def media_patterns() -> list:
    if settings.DEBUG or not getattr(settings, "SERVE_MEDIA", False):
        return []  # under DEBUG, static() above serves them
    return [re_path(r"^%s(?P<path>.*)$" % re.escape(settings.MEDIA_URL.lstrip("/")), serve,  # noqa: UP031
                    {"document_root": settings.MEDIA_ROOT})]  # fmt: skip


urlpatterns = [
    path("c/<slug:slug>/", views.article_detail, name="article-detail"),
    # Back from WeChat's authorise page (web authorisation) for a tracked link opened in WeChat.
    path("r/auth/", views.link_auth_return, name="link-auth-return"),
    path("r/<str:token>", views.link_redirect, name="link-redirect"),
    # Uploaded covers and library images: by Django in development (DEBUG) or with SERVE_MEDIA=true; in production
    # the reverse proxy serves MEDIA_ROOT at MEDIA_URL (see the README's Production section).
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
    *media_patterns(),
]

router = SimpleRouter()
router.register("topics", api.TopicViewSet, basename="topic")
router.register("contents", api.ArticleViewSet, basename="content")
router.register("templates", api.MessageTemplateViewSet, basename="template")
router.register("segments", api.SegmentViewSet, basename="segment")
router.register("pushes", api.PushViewSet, basename="push")
router.register("notice-templates", notice_api.NoticeTemplateViewSet, basename="notice-template")
router.register("notice-consents", notice_api.NoticeConsentViewSet, basename="notice-consent")

api_urlpatterns = [path("", include(router.urls))]
