"""Gateway-level tasks."""

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone


@shared_task(name="wechat_crm.tasks.ping", ignore_result=True)
def ping(key: str) -> None:
    """Prove a worker is consuming: write the time under `key` in the shared cache (health checks, tests)."""
    cache.set(f"ping:{key}", timezone.now().isoformat(), timeout=300)
