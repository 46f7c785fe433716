"""PostgreSQL restarted while WeChat keeps calling: the callback answers 503 (WeChat retries) while the database is
away, never "success" for a message it did not store; after the restart WeChat's retries are stored exactly once,
and nothing half-written remains (every interaction has its subscriber, every follow its follow event).

The database is a PostgreSQL instance of the test's own (initdb, a free port), stopped with `pg_ctl -m immediate`
(as a crash would) and started again; the app runs under gunicorn against it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.wechat_payloads import build_message, sign_callback

from .servers import PG_BIN, AppServer, PostgresServer, app_env, post

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL's server binaries are not installed")


@pytest.fixture(scope="module")
def own_postgres():
    server = PostgresServer()
    server.init()
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE wechat_crm_restart")
    yield server
    server.close()


def test_a_postgres_restart_answers_503_and_leaves_nothing_half_written(own_postgres):
    database_url = own_postgres.url("wechat_crm_restart")
    env = app_env(
        {}, DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:1/0", DATABASE_CONN_MAX_AGE="60"
    )  # no broker: not needed
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True,
                   timeout=600)  # fmt: skip
    app = AppServer(env)
    app.start()
    try:
        messages = []
        for i in range(30):
            openid = f"oPgRestart_{i:04d}"
            messages.append(build_message("subscribe", openid=openid, create_time=1_700_000_000 + i))
            messages.append(build_message("text", openid=openid, Content=f"m{i}"))
        answers: dict[int, int] = {}
        for n, xml in enumerate(messages[:20]):
            answers[n] = post(app.url, *sign_callback(xml, mode="safe"))[0]
        own_postgres.stop("immediate")
        for n, xml in enumerate(messages[20:40], start=20):
            answers[n] = post(app.url, *sign_callback(xml, mode="safe"))[0]
        own_postgres.start()
        for n, xml in enumerate(messages[40:], start=40):
            answers[n] = post(app.url, *sign_callback(xml, mode="safe"), timeout=10)[0]

        assert all(answers[n] == 200 for n in range(20))
        assert all(answers[n] == 503 for n in range(20, 40)), answers  # WeChat retries these
        # The first requests after the restart may still meet a dead pooled connection: 503, never 500 or success.
        assert set(answers.values()) <= {200, 503}
        # WeChat retries every message that was not answered 200 (and some that were: the same body again).
        for n, xml in enumerate(messages):
            status = post(app.url, *sign_callback(xml, mode="safe"), timeout=10)[0]
            assert status == 200, (n, status)
    finally:
        app.stop()

    with psycopg.connect(database_url) as conn:
        interactions = conn.execute("SELECT count(*), count(DISTINCT dedupe_key) FROM accounts_interaction").fetchone()
        orphans = conn.execute("SELECT count(*) FROM accounts_interaction WHERE subscriber_id IS NULL").fetchone()[0]
        subscribers = conn.execute("SELECT count(*) FROM accounts_subscriber WHERE is_following").fetchone()[0]
        follows = conn.execute(
            "SELECT count(*) FROM accounts_interaction i WHERE i.kind = 'subscribe' AND NOT EXISTS "
            "(SELECT 1 FROM accounts_followevent f WHERE f.interaction_id = i.id)"
        ).fetchone()[0]
    assert interactions == (60, 60)  # every message exactly once
    assert orphans == 0 and follows == 0  # nothing half-written
    assert subscribers == 30
