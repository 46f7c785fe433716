from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api, privacy_api

router = SimpleRouter()
router.register("tags", api.TagViewSet, basename="tag")
router.register("subscribers", api.SubscriberViewSet, basename="subscriber")

urlpatterns = [
    path("", include(router.urls)),
    path("subscribers/<int:pk>/export/", privacy_api.SubscriberExportApi.as_view(), name="subscriber-export"),
    path("subscribers/<int:pk>/erase/", privacy_api.SubscriberEraseApi.as_view(), name="subscriber-erase"),
    path("interactions/", api.InteractionListApi.as_view(), name="interaction-list"),
]
