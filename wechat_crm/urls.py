from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from content.urls import api_urlpatterns as content_api_urlpatterns
from wechat_crm.health import healthz
from wechat_crm.metrics import metrics_view

api_patterns = [
    path("", include("accounts.urls")),
    path("", include("campaigns.urls")),
    path("", include(content_api_urlpatterns)),
    path("", include("conversations.urls")),
    path("", include("publishing.urls")),
]

urlpatterns = [
    # Public pages: articles /c/<slug>/ and tracked links /r/<token>, first: the redirect is the hot path after a
    # push to many people (resolved after every other pattern, it cost 30 us instead of 6 of our 2-core machine's).
    path("", include("content.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("wechat/", include("wechat_crm.wechat.urls")),
    path("api/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Staff only, with Swagger UI's files from drf-spectacular-sidecar (no CDN).
    path("api/docs/", staff_member_required(SpectacularSwaggerView.as_view(url_name="schema")), name="api-docs"),
    # The subscriber's preferences page (opened from the custom menu, through web authorisation).
    path("preferences/", include("conversations.page_urls")),
]
