from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class WechatCrmConfig(AppConfig):
    name = "wechat_crm"
    verbose_name = _("WeChat gateway")

    def ready(self) -> None:
        from .admin_lists import headers_once
        from .broker import declare_embedded_queues

        headers_once()  # unfold builds the list's headers once per page, not once per row (admin_lists.py)
        post_migrate.connect(declare_embedded_queues, sender=self, dispatch_uid="wechat_crm.declare_embedded_queues")
