from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class WechatCrmConfig(AppConfig):
    name = "wechat_crm"
    verbose_name = _("WeChat gateway")

    def ready(self) -> None:
        from .broker import declare_embedded_queues

        post_migrate.connect(declare_embedded_queues, sender=self, dispatch_uid="wechat_crm.declare_embedded_queues")
