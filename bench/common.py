"""What several benchmarks share: a free port, their own migrated database, a tight loop of template sends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of `url` if missing, and migrate it."""
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)


def run_threads(count: int, target: Callable[[int], None]) -> float:
    """Seconds for `count` threads running target(0) ... target(count - 1)."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def tight_loop(url: str, token: str, openids: list[str], threads: int, message: Callable[[str, int], dict]) -> float:
    """Messages/s of template sends to everyone in `openids` from a tight urllib3 loop (keep-alive, one token): the
    ceiling the fake server allows."""
    import urllib3

    pool = urllib3.PoolManager(maxsize=threads, retries=False)
    endpoint = f"{url}cgi-bin/message/template/send?access_token={token}"
    errors: list[bytes] = []

    def work(k: int) -> None:
        for i in range(k, len(openids), threads):
            body = json.dumps(message(openids[i], i), ensure_ascii=False).encode()
            resp = pool.request("POST", endpoint, body=body, headers={"Content-Type": "application/json"})
            if json.loads(resp.data).get("errcode") != 0:
                errors.append(resp.data)

    elapsed = run_threads(threads, work)
    assert not errors, errors[:3]
    return len(openids) / elapsed
