"""A worker keeps its database connection from one task to the next, as Django keeps a request's (CONN_MAX_AGE),
instead of Celery's Django fixup opening a new one for every task; a connection too old or left outside autocommit
is closed between tasks, as after a request."""

from __future__ import annotations

import time

import pytest
from celery.fixups.django import DjangoWorkerFixup
from celery.signals import beat_embedded_init, task_postrun, task_prerun, worker_process_init
from django.db import connection

from wechat_crm.celery import app
from wechat_crm.tasks import ping

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit on, as in the worker


@pytest.fixture
def worker_fixup():
    """Celery's Django fixup as a worker installs it, with the product's settings; removed afterwards."""
    fixup = DjangoWorkerFixup(app).install()
    yield fixup
    task_prerun.disconnect(fixup.on_task_prerun)
    task_postrun.disconnect(fixup.on_task_postrun)
    worker_process_init.disconnect(fixup.on_worker_process_init)
    beat_embedded_init.disconnect(fixup.close_database)


def _next_task() -> None:
    """What a worker's pool process signals between two tasks: the end of one, the start of the next."""
    task_postrun.send(sender=ping, task_id="a", task=ping, args=(), kwargs={}, retval=None, state="SUCCESS")
    task_prerun.send(sender=ping, task_id="b", task=ping, args=(), kwargs={})


def _connected(max_age: float):
    connection.ensure_connection()
    connection.close_at = time.monotonic() + max_age  # as CONN_MAX_AGE sets it when connecting
    return connection.connection


def test_the_next_task_uses_the_same_database_connection(worker_fixup):
    before = _connected(60)
    _next_task()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.connection is before


def test_a_connection_older_than_its_max_age_is_closed_between_tasks(worker_fixup):
    _connected(-1)
    _next_task()
    assert connection.connection is None


def test_a_connection_left_outside_autocommit_is_closed_between_tasks(worker_fixup):
    _connected(60)
    connection.set_autocommit(False)
    _next_task()
    assert connection.connection is None
