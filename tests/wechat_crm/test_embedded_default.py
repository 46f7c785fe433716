"""The embedded default: no DATABASE_URL and no REDIS_URL still gives a working product.

This is the one place the suite uses SQLite: `make run` on a fresh machine migrates a SQLite file and
runs a real Celery worker and beat on an embedded (SQLite) broker.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.embedded import ROOT, embedded_environ, manage

CELERY = str(Path(sys.executable).with_name("celery"))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="module")
def fresh_embedded_env(var_dir):
    """The environment of `make run` on a fresh machine, with every migration applied to a new SQLite file."""
    env = embedded_environ(var_dir)
    migrate = manage(env, "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-4000:]
    created = manage(env, "createcachetable")
    assert created.returncode == 0, created.stderr
    return env


def test_migrate_creates_every_queue_of_the_embedded_broker_before_any_process_starts(fresh_embedded_env, var_dir):
    """Two processes declaring a queue at once (the server publishing while the worker starts) race on the queue's
    unique name; migrate creates every queue first, so no process has to."""
    import sqlite3

    with sqlite3.connect(var_dir / "celery-broker.sqlite3") as db:
        names = {row[0] for row in db.execute("SELECT name FROM kombu_queue")}
    assert {"inbound", "outbound", "reports", "default"} <= names


def test_without_database_url_or_redis_url_a_worker_runs_tasks_from_the_embedded_broker(fresh_embedded_env, var_dir):
    assert (var_dir / "wechat_crm.sqlite3").exists()

    worker = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "worker", "-Q", "inbound,outbound,reports,default", "-c", "1", "-l", "INFO"],
        cwd=ROOT,
        env=fresh_embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    beat = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "beat", "-l", "INFO"],
        cwd=ROOT,
        env=fresh_embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        code = (
            "from wechat_crm.tasks import ping; ping.delay('embedded');"
            "import time; from django.core.cache import cache\n"
            "for _ in range(120):\n"
            "    if cache.get('ping:embedded'): print('PONG'); break\n"
            "    time.sleep(0.25)\n"
        )
        shell = manage(fresh_embedded_env, "shell", "-v0", "-c", code)
        assert "PONG" in shell.stdout, shell.stderr
        assert (var_dir / "celery-broker.sqlite3").exists()
        time.sleep(1)
        assert beat.poll() is None, "beat exited on the embedded broker"
    finally:
        for proc in (beat, worker):
            proc.terminate()
        for proc in (beat, worker):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_sqlite_computes_the_funnel_step_delays_to_the_microsecond(fresh_embedded_env):
    # The funnel report reads generated columns; on SQLite they come from accounts.expressions.StageDelay's SQLite SQL.
    code = (
        "import datetime as dt\n"
        "from accounts.models import Subscriber\n"
        "t = dt.datetime(2026, 3, 1, 8, 0, 0, 250000, tzinfo=dt.UTC)\n"
        "s = Subscriber.objects.create(openid='o-embedded-delays', followed_at=t,\n"
        "    engaged_at=t + dt.timedelta(hours=1, microseconds=7),\n"
        "    interactive_at=t + dt.timedelta(minutes=30),\n"
        "    converted_at=t + dt.timedelta(days=2, seconds=1, microseconds=-250000))\n"
        "s = Subscriber.objects.get(pk=s.pk)\n"
        "print('DELAYS', s.engaged_delay_us, s.interactive_delay_us, s.converted_delay_us)\n"
        "s.engaged_at = None; s.save(); s = Subscriber.objects.get(pk=s.pk)\n"
        "print('CLEARED', s.engaged_delay_us, s.interactive_delay_us, s.converted_delay_us)\n"
    )
    shell = manage(fresh_embedded_env, "shell", "-v0", "-c", code)
    assert shell.returncode == 0, shell.stderr
    lines = dict(line.split(" ", 1) for line in shell.stdout.splitlines() if line.startswith(("DELAYS", "CLEARED")))
    # Engaged 1 h after the follow; interactive before engaged counts as 0; converted 2 days - 1 h + 0.75 s after.
    assert lines["DELAYS"] == f"3600000007 0 {(2 * 86400 - 3600 + 1) * 1_000_000 - 250007}"
    assert lines["CLEARED"] == "None None None"
