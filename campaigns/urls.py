"""The campaigns API under /api/: channels, campaigns, conversions, the funnel and attribution."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("channels", api.ChannelViewSet, basename="channel")
router.register("campaigns", api.CampaignViewSet, basename="campaign")
router.register("conversion-types", api.ConversionTypeViewSet, basename="conversion-type")
router.register("conversions", api.ConversionViewSet, basename="conversion")

urlpatterns = [
    path("", include(router.urls)),
    path("funnel/", api.FunnelApi.as_view(), name="funnel"),
    path("funnel/dropoffs/", api.FunnelDropoffsApi.as_view(), name="funnel-dropoffs"),
    path("funnel/attribution/", api.AttributionApi.as_view(), name="funnel-attribution"),
]
