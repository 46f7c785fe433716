from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PublishingConfig(AppConfig):
    name = "publishing"
    verbose_name = _("Publishing on WeChat")

    def ready(self) -> None:
        from . import signals  # noqa: F401 - an edited article updates its uploaded drafts
