from django.urls import path

from .api import SubscriberScoreApi

app_name = "conversations"

urlpatterns = [
    path("subscribers/<int:pk>/score/", SubscriberScoreApi.as_view(), name="subscriber-score"),
]
