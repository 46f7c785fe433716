"""Public pages at the site root (`urlpatterns`) and the API under /api/ (`api_urlpatterns`)."""

from django.conf import settings
from django.conf.urls.static import static
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api, views

app_name = "content"

urlpatterns = [
    path("c/<slug:slug>/", views.article_detail, name="article-detail"),
    path("r/<str:token>", views.link_redirect, name="link-redirect"),
    # Uploaded covers in development (DEBUG); in production the reverse proxy serves MEDIA_ROOT at MEDIA_URL.
    *static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT),
]

router = SimpleRouter()
router.register("topics", api.TopicViewSet, basename="topic")
router.register("contents", api.ArticleViewSet, basename="content")
router.register("templates", api.MessageTemplateViewSet, basename="template")
router.register("segments", api.SegmentViewSet, basename="segment")
router.register("pushes", api.PushViewSet, basename="push")

api_urlpatterns = [path("", include(router.urls))]
