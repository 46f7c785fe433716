from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ContentConfig(AppConfig):
    name = "content"
    verbose_name = _("Content")

    def ready(self) -> None:
        # WeChat's reports on our sends update deliveries and mass batches, in Celery after the callback commits.
        from wechat_crm.wechat.dispatch import register_follow_up

        from .services.deliveries import delivery_job_finish, mass_job_finish

        register_follow_up("templatesendjobfinish", delivery_job_finish)
        register_follow_up("masssendjobfinish", mass_job_finish)
