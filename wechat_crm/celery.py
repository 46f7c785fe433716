"""The Celery app. Queues by urgency: `inbound` (callback follow-ups), `outbound` (sends), `reports`."""

import os

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wechat_crm.settings.production")  # never debug by default

app = Celery("wechat_crm")


@setup_logging.connect
def _logging_from_settings(loglevel=None, **kwargs) -> None:
    """Workers and beat log through settings.LOGGING (its handlers mask openids) instead of Celery's own handlers;
    `-l/--loglevel` still sets the level."""
    from logging.config import dictConfig

    from django.conf import settings

    config = dict(settings.LOGGING)
    if loglevel:
        config["root"] = {**config.get("root", {}), "level": loglevel}
    dictConfig(config)


@task_prerun.connect
@task_postrun.connect
def _database_connections_as_requests(task=None, **kwargs) -> None:
    """Around each task, the worker's database connections are closed as Django closes them around a request: when
    older than CONN_MAX_AGE, broken by an error, or left outside autocommit; a kept one is checked on its first use
    (CONN_HEALTH_CHECKS). Celery's own fixup would close them every time (settings.CELERY_DB_REUSE_MAX). A task run
    eagerly, inside its caller, leaves the caller's connections alone."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    "accounts.tasks.*": {"queue": "inbound"},
    "wechat_crm.tasks.*": {"queue": "inbound"},
    # Tracked-link clicks are stored with the callback's interactions, not behind a push's pages.
    "content.tasks.link_clicks_drain": {"queue": "inbound"},
    "content.tasks.*": {"queue": "outbound"},
    "campaigns.tasks.*": {"queue": "reports"},
    "publishing.tasks.stats_*": {"queue": "reports"},
    "publishing.tasks.*": {"queue": "outbound"},
    # Replies and journey steps are conversations: they must not wait behind a push.
    "conversations.tasks.*": {"queue": "inbound"},
}
app.autodiscover_tasks()


def _beat_schedule():
    from .schedules import BEAT_SCHEDULE

    return BEAT_SCHEDULE


app.conf.beat_schedule = _beat_schedule()
