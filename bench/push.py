#!/usr/bin/env python
"""Benchmark of a template push through the real pipeline, against a tight urllib3 loop on the same fake server.

    .venv/bin/python bench/push.py                       # 10,000 then 100,000 recipients
    .venv/bin/python bench/push.py --sizes 20000 --concurrency 2 --threads 6 --page 500

What it does, per size (10,000 and 100,000 by default):
  1. fills a database of its own (DATABASE_URL, default .../wcrm_bench_push, created and migrated) with N
     following subscribers (bulk insert), and the fake WeChat server (manage.py fake_wechat, --fake-workers gunicorn
     workers, job-finish events off) with the same N followers;
  2. starts a Celery worker (--concurrency processes on the `outbound` queue) and schedules one template push to
     everyone (tracked link, per-subscriber rendering); the beat's claim (content.tasks.pushes_dispatch_due's
     service, SKIP LOCKED) runs here, then the worker resolves the recipients with one INSERT ... SELECT, fans out
     page tasks, and sends each page over one kept-alive pool with --threads in flight, writing statuses in one
     statement per page;
  3. measures messages/s from the claim to the last delivery row written, and the worker's peak memory (RSS of the
     main process and its pool children, sampled from /proc every 50 ms), and checks per openid, from the fake's
     log of accepted calls (the referee, not our delivery rows), that each recipient got exactly one message and
     nobody else got any;
  4. baseline: posts the same number of template messages from a tight urllib3 loop (keep-alive, one token) to the
     same fake server, with the pipeline's concurrency: --concurrency processes x --threads threads in flight, as
     the worker's processes x each page task's threads: the ceiling the fake allows at that concurrency.
Prints both rates and the ratio per size, and the memory at the largest size against the smallest; and the CPU per
message of the worker's processes (from /proc, during the push) and of the tight loop's processes (while sending): on
a machine where both share the cores with the fake, that difference sets the ratio.
Targets: ratio >= 0.7; peak worker memory at 100,000 within 20% of that at 10,000.

The product's rate limit of template sends (WECHAT_RATE_LIMITS, 2,000/s by default) is raised to --rate-limit for
the run: the fake has no limit and the tight loop none, so the bench measures the product's work, not its cap (the
limiter itself still runs, one Redis call per 16 messages). --rate-limit 0 keeps the default.

REDIS_URL (default redis://127.0.0.1:6379/7) is the broker, cache, token store and rate-limit store of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CELERY = str(Path(sys.executable).with_name("celery"))

from bench.common import accepted_per_openid, bench_setup, exactly_once, tight_loop_processes  # noqa: E402


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (/proc/<pid>/stat)."""
    total = 0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


class MemorySampler(threading.Thread):
    """Peak RSS of a process tree (sum of the main process and its children), and the peak of any one of them."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_total, self.peak_one, self.stop = pid, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = [self.pid, *children(self.pid)]
            sizes = [rss_kb(p) for p in pids]
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_one = max(self.peak_one, max(sizes))
            time.sleep(0.05)


def start_worker(env: dict, concurrency: int, log: Path, *, queues: str = "outbound") -> subprocess.Popen:
    proc = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "worker", "-Q", queues, "-c", str(concurrency), "-l", "WARNING",
         "-n", f"bench-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    from wechat_crm.celery import app  # not a bare Celery(): that would become the current app of .delay()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"celery worker exited:\n{log.read_text()[-3000:]}")
        try:
            if app.control.ping(timeout=0.5):
                return proc
        except Exception:  # noqa: S110 - broker not ready yet
            pass
        time.sleep(0.3)
    raise SystemExit("celery worker did not answer a ping within 60 s")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def message(openid: str, i: int) -> dict:
    return {
        "touser": openid,
        "template_id": "tpl_bench",
        "url": f"https://example.com/r/{i:012d}abcdefghijklmnopqrstuvwxyz0123456789",
        "data": {"first": {"value": f"你好 粉丝{i}", "color": "#173177"}, "keyword1": {"value": "Article title"}},
    }


def fill(n: int, fake) -> list[str]:
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Subscriber

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE content_push, accounts_subscriber RESTART IDENTITY CASCADE")
    fake.reset(job_finish_events=False)
    openids: list[str] = []
    for start in range(0, n, 20000):
        openids += fake.add_users(generate=min(20000, n - start))
    now = timezone.now()
    Subscriber.objects.bulk_create(
        (
            Subscriber(openid=o, nickname=f"粉丝{i}", is_following=True, subscribed_at=now)
            for i, o in enumerate(openids)
        ),
        batch_size=5000,
    )
    return openids


def run_push(n: int, args, env: dict, fake, url: str) -> dict:
    from django.conf import settings
    from django.db.models import Count
    from django.utils import timezone

    from content.models import Article, Delivery, MessageTemplate, Push, Segment, SendPolicy
    from content.services import pushes
    from wechat_crm.wechat.ratelimit import redis_client
    from wechat_crm.wechat.tokens import cache_key

    openids = fill(n, fake)
    policy = SendPolicy.current()
    policy.quiet_hours_enabled = False
    policy.template_daily_quota = 10_000_000
    policy.save()
    article = Article.objects.create(title="Bench article", body="# Bench\n\nHello.", digest="A digest")
    template = MessageTemplate.objects.create(
        title="Bench", wechat_template_id="tpl_bench", article=article,
        fields=[{"key": "first", "value": "你好 {{ subscriber.nickname }}", "color": "#173177"},
                {"key": "keyword1", "value": "{{ article.title }}", "color": ""}],
    )  # fmt: skip
    segment = Segment.objects.create(name="everyone", rules={"op": "and", "rules": []})
    push = Push.objects.create(name=f"bench {n}", channel="template", template=template, segment=segment)
    r = redis_client()
    for key in [*r.scan_iter("wechat:ratelimit:*"), "outbound", "celery"]:
        r.delete(key)
    r.delete(cache_key(settings.WECHAT_APP_ID))

    log = Path(tempfile.mkstemp(prefix="bench-push-worker-", suffix=".log")[1])
    worker = start_worker(env, args.concurrency, log)
    sampler = MemorySampler(worker.pid)
    sampler.start()
    try:
        time.sleep(1.0)  # the pool children are up and idle: their RSS is the floor
        idle = sampler.peak_total
        cpu_before = cpu_seconds(worker.pid)
        Push.objects.filter(pk=push.pk).update(status=Push.Status.SCHEDULED, send_at=timezone.now())
        started = time.perf_counter()
        claimed = pushes.pushes_claim_due()  # what the beat's task does; push_start then runs in the worker
        assert claimed == [push.pk], claimed
        deadline = time.monotonic() + args.timeout
        while True:
            push.refresh_from_db(fields=["status"])
            if push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED):
                break
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"push did not finish: {push.status}\n{log.read_text()[-3000:]}")
            time.sleep(0.05)  # the end is seen within 50 ms (0.2 s was 2-3% of a 10k run, counted against the pipeline)
        elapsed = time.perf_counter() - started
        worker_cpu = cpu_seconds(worker.pid) - cpu_before
    finally:
        sampler.stop.set()
        stop_worker(worker)
    statuses = dict(Delivery.objects.filter(push=push).order_by().values_list("status").annotate(n=Count("id")))
    check = exactly_once(accepted_per_openid(fake, "/cgi-bin/message/template/send"), openids)
    fake.clear_calls()
    token = fake.fetch_token()
    base_cpu: list[float] = []
    rate_base = tight_loop_processes(
        url, token, openids, args.concurrency, args.threads, "bench.push:message", cpu=base_cpu
    )
    base_check = exactly_once(accepted_per_openid(fake, "/cgi-bin/message/template/send"), openids)
    fake.clear_calls()
    return {
        "n": n,
        "rate": n / elapsed,
        "elapsed": elapsed,
        "base": rate_base,
        "cpu_us": worker_cpu / n * 1e6,  # the worker's CPU per message (its processes, not PostgreSQL's or Redis's)
        "base_cpu_us": sum(base_cpu) / n * 1e6,
        "idle_mb": idle / 1024,
        "peak_mb": sampler.peak_total / 1024,
        "peak_one_mb": sampler.peak_one / 1024,
        "statuses": statuses,
        "check": {k: len(v) for k, v in check.items()},
        "base_check": {k: len(v) for k, v in base_check.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--page", type=int, default=500, help="deliveries per page task")
    parser.add_argument("--threads", type=int, default=4, help="requests in flight per page task")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--fake-workers", type=int, default=2)
    parser.add_argument("--fake-port", type=int, default=0, help="the fake WeChat's port (default: a free one)")
    parser.add_argument("--rate-limit", type=int, default=100_000,
                        help="the product's outbound rate limit of template sends (WECHAT_RATE_LIMITS), per second: by "
                             "default far above what the fake takes, so that the bench measures the product's work, "
                             "not its configured cap (2,000/s); 0 keeps the product's default")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the worker and the fake when killed

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wcrm_bench_push")
    with bench_setup(name="push", fake_workers=args.fake_workers, port=args.fake_port) as (fake, url):
        env = {
            **os.environ,
            "PUSH_SEND_THREADS": str(args.threads),
            "PUSH_PAGE_SIZES": f"template={args.page}",
            "WECHAT_HTTP_POOL_SIZE": str(max(8, args.threads)),
            "DATABASE_CONN_MAX_AGE": "600",
        }
        if args.rate_limit:  # the limiter still runs (one Redis call per 16 messages); only its cap is lifted
            env["WECHAT_RATE_LIMITS"] = f"template={args.rate_limit}:1000"
        print(
            f"fake WeChat at {url} ({args.fake_workers} workers); worker: {args.concurrency} processes x "
            f"{args.threads} threads, pages of {args.page}; tight loop: the same {args.concurrency} processes x "
            f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        results = []
        for n in (int(s) for s in args.sizes.split(",")):
            res = run_push(n, args, env, fake, url)
            results.append(res)
            print(
                f"  {n:>7} recipients: pipeline {res['rate']:7.0f} msg/s ({res['elapsed']:.1f} s)  "
                f"tight loop {res['base']:7.0f} msg/s  ratio {res['rate'] / res['base']:.2f}  CPU per message: "
                f"worker {res['cpu_us']:.0f} us, tight loop {res['base_cpu_us']:.0f} us  "
                f"worker RSS peak {res['peak_mb']:.0f} MB (idle {res['idle_mb']:.0f} MB, largest process "
                f"{res['peak_one_mb']:.0f} MB)  deliveries {res['statuses']}; per openid from the fake's log: "
                f"pipeline {res['check']}, tight loop {res['base_check']}; load average now {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        if len(results) > 1:
            small, large = results[0], results[-1]
            growth = large["peak_mb"] / small["peak_mb"] - 1
            print(
                f"memory: peak at {large['n']} is {growth * 100:+.1f}% of the peak at {small['n']} "
                f"(target within 20%: {'met' if growth <= 0.2 else 'MISSED'})"
            )
        for res in results:
            ratio = res["rate"] / res["base"]
            once = not any(res["check"].values())
            print(
                f"{res['n']}: ratio {ratio:.2f} (target >= 0.7: {'met' if ratio >= 0.7 else 'MISSED'}); exactly one "
                f"accepted call per recipient and none for anyone else: {'yes' if once else 'NO'}"
            )


if __name__ == "__main__":
    main()
