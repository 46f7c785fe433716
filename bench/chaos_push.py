#!/usr/bin/env python
"""Chaos run of a push: SIGKILL the Celery worker in the middle of a 10,000-recipient template push, start it
again, and check with the fake WeChat server's records that nobody got the message twice and nobody was lost.

    .venv/bin/python bench/chaos_push.py                      # 10,000 recipients, killed after 30% were sent
    .venv/bin/python bench/chaos_push.py --n 20000 --kill-at 0.5 --kills 2 --latency-ms 5

What it does:
  1. fills a database of its own (DATABASE_URL, default .../wechat_crm_h_chaos, created and migrated) and the fake
     WeChat server (manage.py fake_wechat) with N following subscribers;
  2. starts a Celery worker (2 processes), schedules one template push to everyone, and SIGKILLs the worker's whole
     process group when --kill-at of the recipients have been accepted by the fake (--kills times);
  3. does what the beat's safety net does after its grace period (content.services.pushes.pushes_resume_stalled:
     rows left "sending" by the dead worker become unknown, queued pages are enqueued again), starts a new worker
     and waits for the push to finish;
  4. prints, from our rows and the fake's records: duplicated (more than one accepted message), lost (no message
     and not "unknown"), unknown (and how many of those WeChat did accept), and the statuses. Exits 1 on any
     duplicate or loss.

REDIS_URL (default redis://127.0.0.1:6379/8) is the broker, cache, token store and rate-limit store of the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, free_port  # noqa: E402
from bench.push import fill, start_worker, stop_worker  # noqa: E402

TEMPLATE = "/cgi-bin/message/template/send"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="recipients")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction accepted by WeChat before each kill")
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=5, help="the fake's latency per call (slows the push)")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wechat_crm_h_chaos")
    os.environ["DJANGO_SETTINGS_MODULE"] = "wechat_crm.settings.base"
    os.environ["LOG_LEVEL"] = "WARNING"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    fake_proc = subprocess.Popen(
        [sys.executable, "manage.py", "fake_wechat", "--port", str(port), "--quiet", "--workers", "2",
         "--state-dir", tempfile.mkdtemp(prefix="chaos-fake-")],
        cwd=ROOT, env={**os.environ},
    )  # fmt: skip
    os.environ["WECHAT_API_BASE_URL"] = url
    env = {**os.environ, "DATABASE_CONN_MAX_AGE": "600"}
    worker = None
    try:
        ensure_database(os.environ["DATABASE_URL"])
        import django

        django.setup()
        from django.conf import settings
        from django.utils import timezone

        from content.models import Article, Delivery, MessageTemplate, Push, Segment, SendPolicy
        from content.services import pushes
        from wechat_crm.wechat.fake.control import FakeWeChat
        from wechat_crm.wechat.ratelimit import redis_client
        from wechat_crm.wechat.tokens import cache_key

        fake = FakeWeChat(url)
        fake.wait_ready(30)
        fake.reset(appid=settings.WECHAT_APP_ID, secret=settings.WECHAT_APP_SECRET, job_finish_events=False)
        fill(args.n, fake)
        fake.configure(latency_ms=args.latency_ms)
        policy = SendPolicy.current()
        policy.quiet_hours_enabled = False
        policy.template_daily_quota = 10_000_000
        policy.frequency_cap = 1000
        policy.save()
        article = Article.objects.create(title="Chaos", body="# Chaos\n\nHello.", digest="digest")
        template = MessageTemplate.objects.create(
            title="Chaos", wechat_template_id="tpl_chaos", article=article,
            fields=[{"key": "first", "value": "你好 {{ subscriber.nickname }}", "color": ""}],
        )  # fmt: skip
        segment = Segment.objects.create(name="everyone", rules={"op": "and", "rules": []})
        push = Push.objects.create(name=f"chaos {args.n}", channel="template", template=template, segment=segment)
        r = redis_client()
        for key in [*r.scan_iter("wechat:ratelimit:*"), "outbound", "celery", "unacked", "unacked_index"]:
            r.delete(key)
        r.delete(cache_key(settings.WECHAT_APP_ID))

        log = Path(tempfile.mkstemp(prefix="chaos-worker-", suffix=".log")[1])
        worker = start_worker(env, 2, log)
        Push.objects.filter(pk=push.pk).update(status=Push.Status.SCHEDULED, send_at=timezone.now())
        assert pushes.pushes_claim_due() == [push.pk]
        started = time.monotonic()
        for k in range(1, args.kills + 1):
            goal = int(args.n * args.kill_at * k / args.kills)
            while fake.count(TEMPLATE, errcode=0) < goal:
                if time.monotonic() - started > args.timeout:
                    raise SystemExit("the push did not progress")
                time.sleep(0.02)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            at_kill = fake.count(TEMPLATE, errcode=0)
            resumed = pushes.pushes_resume_stalled(
                now=timezone.now() + dt.timedelta(seconds=1), stalled_after=dt.timedelta(0)
            )
            print(f"kill {k}: SIGKILL after {at_kill} accepted sends; pages enqueued again: {resumed}", flush=True)
            worker = start_worker(env, 2, log)
        while True:
            push.refresh_from_db(fields=["status"])
            if push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED):
                break
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"push did not finish: {push.status}")
            time.sleep(0.5)
        elapsed = time.monotonic() - started

        accepted = Counter(c["body"]["touser"] for c in fake.calls(TEMPLATE) if c["errcode"] == 0)
        rows = dict(Delivery.objects.filter(push=push).values_list("subscriber__openid", "status"))
        duplicated = [o for o, n in accepted.items() if n > 1]
        unknown = [o for o, s in rows.items() if s == Delivery.Status.UNKNOWN]
        lost = [o for o, s in rows.items() if accepted[o] == 0 and s != Delivery.Status.UNKNOWN]
        print(
            f"{args.n} recipients in {elapsed:.1f} s, {args.kills} SIGKILL(s): duplicated {len(duplicated)}, "
            f"lost {len(lost)}, unknown {len(unknown)} ({sum(1 for o in unknown if accepted[o])} of them accepted "
            f"by WeChat), statuses {dict(Counter(rows.values()))}, fake accepted {sum(accepted.values())}"
        )
        return 1 if duplicated or lost else 0
    finally:
        if worker is not None:
            stop_worker(worker)
        fake_proc.terminate()
        fake_proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
