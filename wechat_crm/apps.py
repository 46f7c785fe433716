from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WechatCrmConfig(AppConfig):
    name = "wechat_crm"
    verbose_name = _("WeChat gateway")
