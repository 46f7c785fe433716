#!/usr/bin/env python
"""Chaos runs of a template push, each refereed by the fake WeChat server's log against the full recipient list.

    .venv/bin/python bench/chaos_push.py                                  # the three scenarios, 10,000 recipients
    .venv/bin/python bench/chaos_push.py --scenarios kill --n 20000 --kills 2

Scenarios (--scenarios, default all three):
  kill    the Celery worker's whole process group is SIGKILLed when --kill-at of the recipients were accepted by
          the fake (--kills times), and a new worker is started;
  redis   Redis (a private redis-server on a free port, never the shared one; broker, cache and the push's start
          marks) is stopped without saving when 30% were accepted, and started again empty 5 s later;
  faults  10% of WeChat's answers are faults: 5% errcode -1 (system busy), 3% HTTP 503, 2% an answer that comes
          after the client's timeout (WeChat did take the message: the honest outcome is "unknown").
Each run: its own database (DATABASE_URL, default .../wcrm_bench_chaos) and fake server with N following subscribers,
a Celery worker (2 processes) and a real celery beat; the push is claimed as the beat's task would, then left
alone: nothing calls the recovery, the beat's safety net (content.tasks.pushes_dispatch_due, every minute) finds the
stalled pages (PUSH_STALLED_AFTER_SECONDS, 15 s here instead of 300) and resumes them.

It counts from the fake's log of accepted calls, per openid, against the full recipient list:
  duplicated  a recipient with more than one accepted call;
  lost        a recipient with no accepted call whose delivery is not "unknown" (missing rows count as lost);
  unknown     deliveries recorded as unknown, and how many of those WeChat did accept;
  strangers   accepted calls for an openid that is no recipient.
Target: 0 duplicated and 0 lost in every scenario. Exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CELERY = str(Path(sys.executable).with_name("celery"))

from bench.common import accepted_per_openid, bench_setup, free_port  # noqa: E402
from bench.push import fill, start_worker, stop_worker  # noqa: E402

TEMPLATE = "/cgi-bin/message/template/send"
SCENARIOS = ("kill", "redis", "faults")
FAULTS = [
    {"path": TEMPLATE, "rate": 0.05, "errcode": -1},
    {"path": TEMPLATE, "rate": 0.03, "status": 503},
    {"path": TEMPLATE, "rate": 0.02, "timeout": 3, "mode": "answer"},
]


class PrivateRedis:
    """A redis-server of the bench's own, without persistence: stopping it loses everything in it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chaos-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise SystemExit("the private redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # no shutdown save: the queue, the cache and the start marks are gone
            self.proc.wait()


def start_beat(env: dict, log: Path) -> subprocess.Popen:
    schedule = Path(tempfile.mkdtemp(prefix="chaos-beat-")) / "schedule"
    return subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "beat", "-l", "WARNING", "--schedule", str(schedule)],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def run(scenario: str, args, env: dict, fake, redis_server: PrivateRedis) -> dict:
    from django.utils import timezone

    from content.models import Article, Delivery, MessageTemplate, Push, Segment, SendPolicy
    from content.services import pushes

    openids = fill(args.n, fake)
    fake.configure(latency_ms=args.latency_ms, faults=FAULTS if scenario == "faults" else [])
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
    push = Push.objects.create(name=f"chaos {scenario}", channel="template", template=template, segment=segment)
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()

    log = Path(tempfile.mkstemp(prefix=f"chaos-{scenario}-", suffix=".log")[1])
    worker = start_worker(env, 2, log, queues="outbound,default")
    beat = start_beat(env, log)
    events: list[str] = []
    try:
        Push.objects.filter(pk=push.pk).update(status=Push.Status.SCHEDULED, send_at=timezone.now())
        assert pushes.pushes_claim_due() == [push.pk]  # what the beat's task does; the rest is left to the product
        started = time.monotonic()

        def wait_accepted(goal: int) -> int:
            while (done := fake.count(TEMPLATE, errcode=0)) < goal:
                if time.monotonic() - started > args.timeout:
                    raise SystemExit(f"{scenario}: the push did not progress\n{log.read_text()[-3000:]}")
                time.sleep(0.02)
            return done

        if scenario == "kill":
            for k in range(1, args.kills + 1):
                wait_accepted(int(args.n * args.kill_at * k / args.kills))
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                events.append(f"SIGKILL after {fake.count(TEMPLATE, errcode=0)} accepted")
                worker = start_worker(env, 2, log, queues="outbound,default")
        elif scenario == "redis":
            wait_accepted(int(args.n * 0.3))
            redis_server.stop()
            events.append(f"Redis stopped after {fake.count(TEMPLATE, errcode=0)} accepted")
            time.sleep(5)
            redis_server.start()
            events.append(f"Redis started again (empty) after 5 s, {fake.count(TEMPLATE, errcode=0)} accepted")
        while True:
            push.refresh_from_db(fields=["status"])
            open_rows = Delivery.objects.filter(push=push, status__in=["queued", "sending"]).exists()
            if push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED) and not open_rows:
                break
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"{scenario}: push did not finish: {push.status}\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        stop_worker(beat)
        stop_worker(worker)
    accepted = accepted_per_openid(fake, TEMPLATE)
    rows = dict(Delivery.objects.filter(push=push).values_list("subscriber__openid", "status"))
    unknown = [o for o in openids if rows.get(o) == Delivery.Status.UNKNOWN]
    wanted = set(openids)
    return {
        "scenario": scenario,
        "elapsed": elapsed,
        "events": events,
        "duplicated": sum(1 for o in openids if accepted[o] > 1),
        "lost": sum(1 for o in openids if not accepted[o] and rows.get(o) != Delivery.Status.UNKNOWN),
        "unknown": len(unknown),
        "unknown_accepted": sum(1 for o in unknown if accepted[o]),
        "strangers": sum(1 for o in accepted if o not in wanted),
        "statuses": dict(Counter(rows.values())),
        "accepted": sum(accepted.values()),
        "faults": Counter(c["fault"] for c in fake.calls(TEMPLATE) if c.get("fault")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--n", type=int, default=10_000, help="recipients")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction accepted by WeChat before each kill")
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--latency-ms", type=int, default=5, help="the fake's latency per call (slows the push)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--fake-port", type=int, default=0, help="the fake WeChat's port (default: a free one)")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or any(s not in SCENARIOS for s in scenarios) or args.n < 1:
        parser.error(f"--scenarios takes some of {', '.join(SCENARIOS)}; --n at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    redis_server = PrivateRedis()
    redis_server.start()
    os.environ["REDIS_URL"] = redis_server.url
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wcrm_bench_chaos")
    results = []
    try:
        with bench_setup(name="chaos", port=args.fake_port) as (fake, _url):
            env = {
                **os.environ,
                "DATABASE_CONN_MAX_AGE": "600",
                "PUSH_STALLED_AFTER_SECONDS": "15",
                "WECHAT_HTTP_TIMEOUT": "1.5",  # the late answers (3 s) of the faults scenario time out
            }
            for scenario in scenarios:
                r = run(scenario, args, env, fake, redis_server)
                results.append(r)
                print(
                    f"{scenario:7} {args.n} recipients in {r['elapsed']:.1f} s ({'; '.join(r['events']) or 'no event'}"
                    f"{'; faults ' + str(dict(r['faults'])) if r['faults'] else ''}): duplicated {r['duplicated']}, "
                    f"lost {r['lost']}, unknown {r['unknown']} ({r['unknown_accepted']} of them accepted by WeChat), "
                    f"strangers {r['strangers']}; fake accepted {r['accepted']}; statuses {r['statuses']}",
                    flush=True,
                )
    finally:
        redis_server.stop()
    ok = all(not (r["duplicated"] or r["lost"] or r["strangers"]) for r in results)
    print(f"target 0 duplicated and 0 lost in every scenario: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
