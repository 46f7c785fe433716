"""The embedded broker (SQLite through kombu's SQLAlchemy transport) made safe to start several processes on.

kombu creates a queue's row the first time a process declares it, and two processes declaring the same queue at
once (the web server publishing while the worker starts) make the second fail on the row's unique name. `migrate`
declares every queue once, before `make run` starts any process, so that no process ever has to create one.
"""

from django.conf import settings

EMBEDDED_SCHEMES = ("sqla+", "sqlalchemy+")


def queue_names() -> list[str]:
    """Every queue a task can be routed to, and the default queue."""
    from .celery import app

    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    names.update(route["queue"] for route in app.conf.task_routes.values())
    return sorted(names)


def declare_embedded_queues(**kwargs) -> None:
    """post_migrate: on the embedded broker, create every queue's row; on Redis there is nothing to create."""
    if not str(settings.CELERY_BROKER_URL).startswith(EMBEDDED_SCHEMES):
        return
    from kombu import Queue

    from .celery import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in queue_names():
            Queue(name, channel=channel).declare()
