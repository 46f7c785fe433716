"""The Redis cache keeps one Redis client (Django's builds one per call), and behaves as Django's cache does:
across threads, and in a process forked after it was used (gunicorn and Celery fork their workers)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis cache is used only with REDIS_URL")


def test_the_cache_keeps_its_redis_client_and_add_still_counts_once():
    key = f"test-cache:{uuid.uuid4().hex}"
    client = cache._cache.get_client(key, write=True)

    assert cache.add(key, 1, 30) is True
    assert cache.add(key, 2, 30) is False  # what the click dedupe relies on
    assert cache.get(key) == 1
    assert cache._cache.get_client(key, write=True) is client


def test_threads_share_the_client_and_each_add_wins_once():
    key = f"test-cache:{uuid.uuid4().hex}"
    wins: list[bool] = []

    def add() -> None:
        wins.append(cache.add(key, threading.get_ident(), 30))

    threads = [threading.Thread(target=add) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and len(wins) == 16


def test_a_forked_process_uses_the_cache_on_its_own_connection():
    key = f"test-cache:{uuid.uuid4().hex}"
    cache.set(key, "parent", 30)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: gunicorn's and Celery's workers are forked after the app was loaded
        try:
            ok = cache.get(key) == "parent" and cache.add(f"{key}:child", 1, 30)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert cache.get(f"{key}:child") == 1 and cache.get(key) == "parent"
