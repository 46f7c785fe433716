"""The real worker that integration tests rely on consumes from Redis and shares the test database."""

import uuid

from django.core.cache import cache

from tests.helpers import wait_for
from wechat_crm.tasks import ping


def test_a_task_sent_by_the_test_runs_in_the_real_worker(celery_worker):
    key = uuid.uuid4().hex
    ping.delay(key)
    assert wait_for(lambda: cache.get(f"ping:{key}"), timeout=30, message="worker did not run the task")


def test_a_killed_worker_starts_again_and_takes_new_tasks(celery_worker):
    celery_worker.kill()
    celery_worker.start()
    key = uuid.uuid4().hex
    ping.delay(key)
    assert wait_for(lambda: cache.get(f"ping:{key}"), timeout=30, message="restarted worker did not run the task")
