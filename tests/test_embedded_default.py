"""The embedded default: no DATABASE_URL and no REDIS_URL still gives a working product.

This is the one place the suite uses SQLite: `make run` on a fresh machine migrates a SQLite file and
runs a real Celery worker and beat on an embedded (SQLite) broker.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(WECHAT_CRM_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="wechat_crm.settings.local")
    return env


def manage(env, *args, timeout=120):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_without_database_url_or_redis_url_a_worker_runs_tasks_from_the_embedded_broker(embedded_env, tmp_path):
    migrate = manage(embedded_env, "migrate", "--noinput")
    assert migrate.returncode == 0, migrate.stderr
    assert manage(embedded_env, "createcachetable").returncode == 0
    assert (tmp_path / "wechat_crm.sqlite3").exists()

    worker = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "worker", "-Q", "inbound,outbound,reports,default", "-c", "1", "-l", "INFO"],
        cwd=ROOT,
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    beat = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "beat", "-l", "INFO"],
        cwd=ROOT,
        env=embedded_env,
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
        shell = manage(embedded_env, "shell", "-v0", "-c", code)
        assert "PONG" in shell.stdout, shell.stderr
        assert (tmp_path / "celery-broker.sqlite3").exists()
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
