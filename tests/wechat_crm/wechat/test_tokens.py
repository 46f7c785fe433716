"""One access token for all processes: fetched once, refreshed by one process behind a lock, shared through the
cache (Redis, or the database cache on the embedded default), against the fake WeChat server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command

from tests.helpers import in_threads
from wechat_crm.wechat.client import get_client
from wechat_crm.wechat.tokens import TokenStore, cache_key

ROOT = Path(__file__).resolve().parents[3]
STABLE = "/cgi-bin/stable_token"


@pytest.fixture
def database_cache(settings, transactional_db):
    """The embedded default: no Redis, the token and the lock in the database cache."""
    settings.REDIS_URL = ""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "wechat_crm_test_cache"}
    }
    call_command("createcachetable", verbosity=0)
    cache.clear()
    yield
    cache.clear()


def _store(settings) -> TokenStore:
    """A token store as another process would have it: its own memory, the shared cache."""
    return TokenStore(settings.WECHAT_APP_ID, settings.WECHAT_APP_SECRET)


def _fetch_once_for_many(fake, settings) -> None:
    stores = [_store(settings) for _ in range(12)]
    tokens = in_threads(12, lambda i: stores[i].get())
    assert len(set(tokens)) == 1
    assert fake.count(STABLE) == 1
    assert cache.get(cache_key(settings.WECHAT_APP_ID))["token"] == tokens[0]
    # Fetched through stable_token in normal mode, never the legacy cgi-bin/token.
    assert fake.calls(STABLE)[0]["body"]["force_refresh"] is False
    assert fake.count("/cgi-bin/token") == 0


def _refused_token_replaced_once(fake, settings) -> None:
    a, b = _store(settings), _store(settings)
    first = a.get()
    assert b.get() == first
    fake.invalidate_tokens()
    # Both "processes" see the same token refused; only the first fetches a new one.
    second = a.refresh_invalid(first)
    assert b.refresh_invalid(first) == second != first
    assert [c["body"]["force_refresh"] for c in fake.calls(STABLE)] == [False, True]


def test_one_fetch_serves_every_process_on_redis(fake, settings):
    assert settings.REDIS_URL
    _fetch_once_for_many(fake, settings)


def test_one_fetch_serves_every_process_on_the_database_cache(fake, settings, database_cache):
    _fetch_once_for_many(fake, settings)


def test_status_reports_the_shared_token_without_fetching(fake, settings):
    store = _store(settings)
    assert store.status() == {"cached": False, "expires_in": 0}
    assert fake.count(STABLE) == 0
    _store(settings).get()
    status = store.status()
    assert status["cached"] is True
    assert 7000 < status["expires_in"] <= 7200


def test_refused_token_is_replaced_once_on_redis(fake, settings):
    _refused_token_replaced_once(fake, settings)


def test_refused_token_is_replaced_once_on_the_database_cache(fake, settings, database_cache):
    _refused_token_replaced_once(fake, settings)


def test_token_is_refreshed_by_one_caller_before_it_expires(fake, settings):
    fake.configure(token_ttl=6)  # the fake hands out the next token in the last 3 s; we refresh 2 s before
    stores = [_store(settings) for _ in range(8)]
    first = stores[0].get()
    time.sleep(4.3)
    tokens = in_threads(8, lambda i: stores[i].get())
    assert fake.count(STABLE) == 2
    second = cache.get(cache_key(settings.WECHAT_APP_ID))["token"]
    assert second != first
    # The caller that refreshed uses the new token; the others go on with the old one (still valid) or the new.
    assert second in tokens
    assert set(tokens) <= {first, second}
    assert get_client().tokens.get() == second


_WORKER = r"""
import json, sys, threading, time
import django
django.setup()
from wechat_crm.wechat.client import get_client
from wechat_crm.wechat.errors import WeChatError

openid = sys.argv[1]
# Django is set up: say so, then wait for the common start time (every process starts the same phases together,
# however long each took to start on a loaded machine).
print("ready", flush=True)
t0 = float(sys.stdin.readline())
# Busy until t0+9 (two early refreshes), idle until the token has expired, busy again from t0+15.5.
phases = [(t0, t0 + 9.0), (t0 + 15.5, t0 + 18.0)]
ok = 0
failed = []
lock = threading.Lock()

def work():
    global ok
    client = get_client()
    for start, end in phases:
        while time.time() < start:
            time.sleep(0.002)
        while time.time() < end:
            try:
                client.user.get(openid)
                with lock:
                    ok += 1
            except WeChatError as exc:
                with lock:
                    failed.append(str(exc))
            time.sleep(0.05)

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"ok": ok, "failed": failed[:5], "failures": len(failed)}))
"""


@pytest.mark.slow
def test_four_processes_of_eight_threads_fetch_one_token_per_expiry(fake, settings):
    fake.configure(token_ttl=6)
    [openid] = fake.add_users(generate=1)
    fake.clear_calls()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.test",
        "REDIS_URL": settings.REDIS_URL,
        "WECHAT_API_BASE_URL": fake.url,
        "WECHAT_APP_ID": settings.WECHAT_APP_ID,
        "WECHAT_APP_SECRET": settings.WECHAT_APP_SECRET,
        "WECHAT_RATE_LIMITS": "user=0:1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, openid],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    assert all(p.stdout.readline().strip() == "ready" for p in procs)
    t0 = time.time() + 0.5
    for p in procs:
        p.stdin.write(f"{t0}\n")
        p.stdin.close()
    reports = [json.loads(p.stdout.read()) for p in procs]
    for p in procs:
        p.wait(timeout=120)
    assert all(p.returncode == 0 for p in procs)

    assert sum(r["failures"] for r in reports) == 0, reports
    assert all(r["ok"] > 50 for r in reports)
    fetches = fake.calls(STABLE)
    calls = fake.calls("/cgi-bin/user/info")
    assert all(c["errcode"] == 0 for c in calls)
    used = {c["query"]["access_token"] for c in calls}
    print(f"{len(calls)} calls from 32 threads, {len(fetches)} token fetches, {len(used)} tokens used")
    # Every fetch produced a token that was then used, i.e. no process fetched a token somebody else had just
    # fetched: one fetch at the start, one per early refresh, one after the idle expiry.
    assert len(fetches) == len(used)
    assert len(fetches) >= 3
    assert not any(f["body"].get("force_refresh") for f in fetches)
