from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api
from .api import SubscriberScoreApi

app_name = "conversations"

router = SimpleRouter()
router.register("auto-replies", api.AutoReplyRuleViewSet, basename="auto-reply")
router.register("menus", api.MenuViewSet, basename="menu")
router.register("journeys", api.JourneyViewSet, basename="journey")
router.register("journey-steps", api.JourneyStepViewSet, basename="journey-step")
router.register("score-rules", api.ScoreRuleViewSet, basename="score-rule")

urlpatterns = [
    path("", include(router.urls)),
    path("subscribers/<int:pk>/score/", SubscriberScoreApi.as_view(), name="subscriber-score"),
]
