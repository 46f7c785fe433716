from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"
    verbose_name = _("Conversations and journeys")

    def ready(self) -> None:
        from . import signals  # noqa: F401  (cache invalidation)
