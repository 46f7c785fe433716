from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate
from django.utils.translation import gettext_lazy as _


def _attribute_imported(sender, openids: list[str], **kwargs) -> None:
    from .services import channels_attribute_imported

    channels_attribute_imported(openids=openids)


def _channel_deleted(sender, instance, **kwargs) -> None:
    from .summary import summary_key_removed

    summary_key_removed(channel_id=instance.pk)


def _article_deleted(sender, instance, **kwargs) -> None:
    from .summary import summary_key_removed

    summary_key_removed(content_id=instance.pk)


def _sync_roles(sender, using="default", **kwargs) -> None:
    """After every migrate, models added since the roles migration get their permissions in the role groups."""
    from wechat_crm.permissions import role_permissions_sync

    role_permissions_sync(using=using)


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")

    def ready(self) -> None:
        post_migrate.connect(_sync_roles, sender=self, dispatch_uid="campaigns_sync_roles")

        from accounts.signals import followers_imported_with_scene

        followers_imported_with_scene.connect(_attribute_imported, dispatch_uid="campaigns_attribute_imported")
        # The database sets the subscribers' source channel or engaging content to NULL: the summary's key too.
        post_delete.connect(_channel_deleted, sender="campaigns.Channel", dispatch_uid="campaigns_summary_channel")
        post_delete.connect(_article_deleted, sender="content.Article", dispatch_uid="campaigns_summary_article")
