"""An edited article updates the drafts WeChat still holds of it (updated on WeChat, in Celery after the commit)."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from content.models import Article


@receiver(post_save, sender=Article, dispatch_uid="publishing_article_saved")
def article_saved(sender, instance: Article, created: bool, **kwargs) -> None:
    if created:
        return
    from .models import Draft

    if not Draft.objects.filter(status=Draft.Status.UPLOADED, items__article_id=instance.pk).exists():
        return
    from .tasks import drafts_sync_article_task

    article_id = instance.pk
    transaction.on_commit(lambda: drafts_sync_article_task.delay(article_id))
