"""What several benchmarks share: a free port, their own migrated database, a tight loop of template sends, and the
referee: the fake WeChat's log of accepted calls, per openid."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
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
    env = {"DJANGO_SETTINGS_MODULE": "wechat_crm.settings.base", **os.environ, "DATABASE_URL": url}  # not production
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)


@contextlib.contextmanager
def bench_setup(*, name: str, fake_workers: int = 2, port: int = 0) -> Iterator[tuple[object, str]]:
    """What a benchmark against the fake WeChat does first, and undoes last: Django set up on its base settings (not
    production's, logs at WARNING) with the product pointed at the fake; the fake server started on `port` (a free
    one when 0) with `fake_workers` workers and a state directory of its own; DATABASE_URL's database created and
    migrated; the fake reset for the product's app id, job-finish events off. Yields (the fake's control client,
    its URL); the fake is stopped on the way out. Set REDIS_URL and DATABASE_URL before entering."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "wechat_crm.settings.base"
    os.environ["LOG_LEVEL"] = "WARNING"
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    os.environ["WECHAT_API_BASE_URL"] = url  # the fake refuses to start unless the product points at it
    fake_proc = subprocess.Popen(
        [sys.executable, "manage.py", "fake_wechat", "--port", str(port), "--quiet", "--workers", str(fake_workers),
         "--state-dir", tempfile.mkdtemp(prefix=f"bench-{name}-fake-")],
        cwd=ROOT, env={**os.environ},
    )  # fmt: skip
    try:
        ensure_database(os.environ["DATABASE_URL"])
        import django

        django.setup()
        from django.conf import settings

        from wechat_crm.wechat.fake.control import FakeWeChat

        fake = FakeWeChat(url)
        fake.wait_ready(30)
        fake.reset(appid=settings.WECHAT_APP_ID, secret=settings.WECHAT_APP_SECRET, job_finish_events=False)
        yield fake, url
    finally:
        fake_proc.terminate()
        fake_proc.wait(10)


def _cpu_seconds(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user + system) of a process, from Linux /proc; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 4, 14, 15


def workers_cpu_seconds(parent: int) -> float:
    """CPU seconds (user + system) used so far by the children of `parent` (gunicorn's workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _cpu_seconds(int(entry.name))) is not None and stat[0] == parent:
            total += stat[1]
    return total


class DatabaseCPU:
    """CPU seconds used by the PostgreSQL backends serving one database (every connection to it but this one's),
    read from /proc: the servers' share of the database's work, which a figure per request must include when two
    targets send different statements. Backends that end between two readings take their CPU with them (the
    product keeps its connections: CONN_MAX_AGE)."""

    def __init__(self, database_url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(database_url, autocommit=True)

    def read(self) -> dict[int, float]:
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return {pid: stat[1] for (pid,) in pids if (stat := _cpu_seconds(pid)) is not None}

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())

    def close(self) -> None:
        self.conn.close()


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


def _tight_loop_process(url, token, openids, threads, message_path, results) -> None:
    import importlib

    module, name = message_path.rsplit(":", 1)
    message = getattr(importlib.import_module(module), name)
    started, cpu = time.perf_counter(), time.process_time()
    tight_loop(url, token, openids, threads, message)
    results.put((started, time.perf_counter(), time.process_time() - cpu))


def tight_loop_processes(
    url: str, token: str, openids: list[str], processes: int, threads: int, message: str, cpu: list | None = None
) -> float:
    """Messages/s of the tight loop run by `processes` processes x `threads` threads, the same requests in flight as
    a Celery worker of that many processes sending with that many threads each. `message` is "module:function".
    The rate is all messages over the time from the first process's start to the last one's end. The processes' CPU
    seconds while sending are appended to `cpu` when given."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # not fork: kombu's after-fork hooks hang on a parent's broker connection
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_tight_loop_process, args=(url, token, openids[k::processes], threads, message, results))
        for k in range(processes)
    ]
    for p in procs:
        p.start()
    spans = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"tight loop process exited with {p.exitcode}")
    if cpu is not None:
        cpu += [seconds for _s, _e, seconds in spans]
    return len(openids) / (max(end for _, end, _c in spans) - min(start for start, _, _c in spans))


def accepted_per_openid(fake, path: str) -> Counter:
    """The referee: how many calls to `path` the fake WeChat accepted (errcode 0) for each openid (`touser`)."""
    accepted: Counter = Counter()
    since = 0
    while True:
        page = fake.calls(path, errcode=0, since_id=since, limit=20000)
        if not page:
            return accepted
        accepted.update(call["body"].get("touser") for call in page)
        since = page[-1]["id"]


def exactly_once(accepted: Counter, recipients: list[str]) -> dict[str, list[str]]:
    """Recipients the fake accepted no call for, more than one, and openids it accepted a call for that are no
    recipients."""
    wanted = set(recipients)
    return {
        "missing": [o for o in recipients if not accepted[o]],
        "duplicated": [o for o in recipients if accepted[o] > 1],
        "strangers": [o for o in accepted if o not in wanted],
    }
