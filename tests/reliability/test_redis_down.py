"""Redis stopped: the callback still answers (within WeChat's 5 s) and stores the interaction; the follow-up work
that could not be queued is done once Redis is back (the interaction row is the outbox, the sweeper relays it).

A real redis-server of the test's own is stopped and started; the app runs under gunicorn with REDIS_URL on it.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Interaction, Subscriber
from tests.fixtures.celery_worker import WorkerProcess
from tests.fixtures.wechat_payloads import build_message, sign_callback
from tests.helpers import wait_for

from .servers import METRICS_TOKEN, AppServer, RedisServer, app_env, post


@pytest.fixture
def private_redis():
    server = RedisServer()
    server.start()
    yield server
    server.close()


def _health(url: str) -> tuple[int, dict]:
    try:
        request = urllib.request.Request(url + "/healthz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("mode", ["safe"])
def test_with_redis_down_the_callback_answers_and_the_follow_up_runs_once_redis_is_back(
    transactional_db, private_redis, mode
):
    env = app_env(connection.settings_dict, REDIS_URL=private_redis.url)
    app = AppServer(env)
    app.start()
    worker = WorkerProcess(env)
    try:
        assert _health(app.url)[0] == 200
        private_redis.stop()

        openid = "oRedisDown_follower_000001"
        status, body = post(app.url, *sign_callback(build_message("subscribe", openid=openid), mode=mode))
        assert status == 200, body
        status, _ = post(app.url, *sign_callback(build_message("text", openid=openid, Content="还在吗"), mode=mode))
        assert status == 200
        follow = Interaction.objects.get(kind="subscribe")
        assert follow.processed_at is None  # the follow-up (profile fetch) could not be queued
        assert Interaction.objects.get(kind="text").content == "还在吗"
        assert Subscriber.objects.get(openid=openid).is_following
        code, report = _health(app.url)
        assert code == 503 and report["checks"]["broker"]["ok"] is False and report["checks"]["database"]["ok"]

        private_redis.start()
        worker.start()
        # The sweeper takes rows pending for over 30 s; the beat runs it every minute. Here: once, when due.
        Interaction.objects.filter(pk=follow.pk).update(received_at=timezone.now() - dt.timedelta(minutes=1))
        from accounts.tasks import interactions_sweep
        from wechat_crm.celery import app as celery_app

        with celery_app.connection_for_write(private_redis.url) as conn:
            interactions_sweep.apply_async(connection=conn)

        def processed():
            follow.refresh_from_db()
            return follow.processed_at is not None

        wait_for(processed, timeout=120, interval=0.5, message="the sweeper did not process the interaction")
        assert Interaction.objects.count() == 2
    finally:
        worker.stop()
        app.stop()
