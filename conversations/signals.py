"""Saving or deleting an auto-reply rule clears this process's rule cache at once (others within seconds)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import AutoReplyRule


@receiver([post_save, post_delete], sender=AutoReplyRule)
def _rules_changed(**kwargs) -> None:
    from .replies import rules_cache_clear

    rules_cache_clear()
