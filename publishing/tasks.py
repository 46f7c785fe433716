"""Celery tasks of publishing. Each takes ids or plain values, calls a service, and is safe to run twice."""

from __future__ import annotations

import datetime as dt

from celery import shared_task


@shared_task(name="publishing.tasks.drafts_sync_article")
def drafts_sync_article_task(article_id: int) -> int:
    """An edited article: update the drafts WeChat still holds of it."""
    from .services.drafts import drafts_sync_article

    return drafts_sync_article(article_id=article_id)


@shared_task(name="publishing.tasks.stats_pull_daily")
def stats_pull_daily() -> dict:
    from .services.stats import stats_pull_yesterday

    return stats_pull_yesterday()


@shared_task(name="publishing.tasks.stats_pull_range")
def stats_pull_range(begin: str, end: str) -> dict:
    from .services.stats import stats_pull

    return stats_pull(begin=dt.date.fromisoformat(begin), end=dt.date.fromisoformat(end))


@shared_task(name="publishing.tasks.publications_poll")
def publications_poll() -> int:
    from .services.publish import publications_poll as poll

    return poll()


@shared_task(name="publishing.tasks.media_sync")
def media_sync_task() -> dict:
    from .services.media import media_sync

    return media_sync()
