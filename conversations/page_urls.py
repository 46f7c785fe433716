"""The public preferences page (at /preferences/, see conversations.views); the API is conversations.urls."""

from django.urls import path

from . import views

app_name = "preferences"

urlpatterns = [
    path("", views.preferences_page, name="page"),
    path("auth/", views.preferences_auth, name="auth"),
]
