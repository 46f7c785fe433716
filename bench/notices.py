#!/usr/bin/env python
"""Benchmark of a subscription-notice push (订阅通知) through the real pipeline, against a tight urllib3 loop posting
the same notices to the same fake server.

    .venv/bin/python bench/notices.py                    # 10,000 followers, half of them consented
    .venv/bin/python bench/notices.py --sizes 2000,20000 --share 0.3

Per size: N following subscribers in a database of its own and in the fake WeChat (job-finish events off); a
long-term notice template added from the fake's library (so the tight loop may send the same notices again); a
share of the people accepted it (in the fake, and in our consent table); one notice push to everyone, claimed as the
beat does and sent by a Celery worker (--concurrency processes x --threads threads). Measured: consented notices/s
from the claim to the push's end. The others are skipped by the send policy's consent rule inside that time: since
the consent rule is applied set-based when the push's recipients are written (push_resolve, in the worker's start
task), their rows are written skipped by that statement instead of being claimed, decided and written by the pages
(before, the same pages did it row by row); the measured span and the baseline are unchanged.
Referee: the fake's log of accepted bizsend calls per openid: exactly one per consenting person, none for anyone
else. Baseline: the same consenting openids posted to bizsend from a tight loop with the same processes x threads.
Prints both rates and their ratio (target >= 0.7, as for template pushes).

The product's rate limit of notices (WECHAT_RATE_LIMITS, 500/s by default) is raised to --rate-limit for the run: at
500/s the cap, not the product's work, would set the pipeline's rate (5,000 notices take at least 10 s) while the tight
loop has none. The limiter itself still runs (one Redis call per 16 messages). --rate-limit 0 keeps the default.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import accepted_per_openid, bench_setup, exactly_once, run_threads  # noqa: E402
from bench.push import fill, start_worker, stop_worker  # noqa: E402

BIZSEND = "/cgi-bin/message/subscribe/bizsend"
VALUES = {"thing1": "1路", "time2": "08:10"}


def _loop_process(url, token, template_id, openids, threads, results) -> None:
    import urllib3

    pool = urllib3.PoolManager(maxsize=threads, retries=False)
    endpoint = f"{url}cgi-bin/message/subscribe/bizsend?access_token={token}"
    errors: list[bytes] = []

    def work(k: int) -> None:
        for i in range(k, len(openids), threads):
            body = {
                "touser": openids[i],
                "template_id": template_id,
                "data": {k: {"value": v} for k, v in VALUES.items()},
            }
            resp = pool.request("POST", endpoint, body=json.dumps(body, ensure_ascii=False).encode(),
                                headers={"Content-Type": "application/json"})  # fmt: skip
            if json.loads(resp.data).get("errcode") != 0:
                errors.append(resp.data)

    started = time.perf_counter()
    run_threads(threads, work)
    results.put((started, time.perf_counter(), len(errors)))


def tight_loop(url: str, token: str, template_id: str, openids: list[str], processes: int, threads: int) -> float:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_loop_process, args=(url, token, template_id, openids[k::processes], threads, results))
             for k in range(processes)]  # fmt: skip
    for p in procs:
        p.start()
    spans = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    assert not sum(errors for _s, _e, errors in spans), "the tight loop's notices were refused"
    return len(openids) / (max(end for _, end, _e in spans) - min(start for start, _, _e in spans))


def run(n: int, share: float, args, env: dict, fake, url: str) -> dict:
    from django.conf import settings
    from django.db.models import Count
    from django.utils import timezone

    from accounts.models import Subscriber
    from content.models import Delivery, NoticeConsent, Push, Segment, SendPolicy
    from content.services import notices, pushes
    from wechat_crm.wechat.ratelimit import redis_client
    from wechat_crm.wechat.tokens import cache_key

    openids = fill(n, fake)
    r = redis_client()
    for key in [*r.scan_iter("wechat:ratelimit:*"), "outbound", "celery"]:
        r.delete(key)
    r.delete(cache_key(settings.WECHAT_APP_ID))
    policy = SendPolicy.current()
    policy.quiet_hours_enabled = False
    policy.frequency_cap = 1000
    policy.save()
    template = notices.notice_template_add(tid="1003", kid_list=[1, 2], scene_desc="到站提醒")  # long-term
    rng = random.Random(n)
    consenting = sorted(rng.sample(openids, int(n * share)))
    started_seed = time.perf_counter()
    run_threads(4, lambda k: [fake.notices_decide(o, accept=[template.template_id], post=False)
                              for o in consenting[k::4]])  # fmt: skip
    ids = dict(Subscriber.objects.filter(openid__in=consenting).values_list("openid", "pk"))
    NoticeConsent.objects.bulk_create(
        [NoticeConsent(subscriber_id=ids[o], template_id=template.template_id, accepted=True, credits=1,
                       changed_at=timezone.now()) for o in consenting], batch_size=5000,
    )  # fmt: skip
    seeded = time.perf_counter() - started_seed
    segment = Segment.objects.create(name="everyone", rules={})
    push = pushes.push_create(name=f"bench notices {n}", channel=Push.Channel.NOTICE, notice_template=template,
                              notice_values=dict(VALUES), segment=segment)  # fmt: skip
    log = Path(tempfile.mkstemp(prefix="bench-notices-worker-", suffix=".log")[1])
    worker = start_worker(env, args.concurrency, log)
    try:
        Push.objects.filter(pk=push.pk).update(status=Push.Status.SCHEDULED, send_at=timezone.now())
        started = time.perf_counter()
        assert pushes.pushes_claim_due() == [push.pk]
        deadline = time.monotonic() + args.timeout
        while True:
            push.refresh_from_db(fields=["status"])
            if push.status in (Push.Status.SENT, Push.Status.PARTIALLY_FAILED):
                break
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"push did not finish: {push.status}\n{log.read_text()[-3000:]}")
            time.sleep(0.05)  # the end is seen within 50 ms (as bench/push.py)
        elapsed = time.perf_counter() - started
    finally:
        stop_worker(worker)
    rows = Delivery.objects.filter(push=push).order_by().values_list("status", "reason").annotate(n=Count("id"))
    statuses = {f"{status}:{reason}" if reason else status: count for status, reason, count in rows}
    check = exactly_once(accepted_per_openid(fake, BIZSEND), consenting)
    fake.clear_calls()
    token = fake.fetch_token()
    base = tight_loop(url, token, template.template_id, consenting, args.concurrency, args.threads)
    base_check = exactly_once(accepted_per_openid(fake, BIZSEND), consenting)
    fake.clear_calls()
    return {"n": n, "consenting": len(consenting), "rate": len(consenting) / elapsed, "elapsed": elapsed,
            "base": base, "statuses": statuses, "seeded": seeded, "check": {k: len(v) for k, v in check.items()},
            "base_check": {k: len(v) for k, v in base_check.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000")
    parser.add_argument("--share", type=float, default=0.5, help="share of the followers who accepted the notice")
    parser.add_argument("--page", type=int, default=500, help="deliveries per page task")
    parser.add_argument("--threads", type=int, default=4, help="requests in flight per page task")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--fake-workers", type=int, default=2)
    parser.add_argument("--fake-port", type=int, default=0, help="the fake WeChat's port (default: a free one)")
    parser.add_argument("--rate-limit", type=int, default=100_000,
                        help="the product's outbound rate limit of notice sends (WECHAT_RATE_LIMITS), per second: by "
                             "default far above what the fake takes, so that the bench measures the product's work, "
                             "not its configured cap (500/s); 0 keeps the product's default")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wcrm_bench_notices")
    with bench_setup(name="notices", fake_workers=args.fake_workers, port=args.fake_port) as (fake, url):
        env = {**os.environ, "PUSH_SEND_THREADS": str(args.threads), "PUSH_PAGE_SIZES": f"notice={args.page}",
               "WECHAT_HTTP_POOL_SIZE": str(max(8, args.threads)), "DATABASE_CONN_MAX_AGE": "600"}  # fmt: skip
        if args.rate_limit:  # the limiter still runs (one Redis call per 16 messages); only its cap is lifted
            env["WECHAT_RATE_LIMITS"] = f"notice={args.rate_limit}:1000"
        load = os.getloadavg()[0]
        print(f"fake WeChat at {url} ({args.fake_workers} workers); worker and tight loop: {args.concurrency} "
              f"processes x {args.threads} threads; load average {load:.1f}", flush=True)  # fmt: skip
        for n in (int(s) for s in args.sizes.split(",")):
            res = run(n, args.share, args, env, fake, url)
            ratio = res["rate"] / res["base"]
            once = not any(res["check"].values())
            print(
                f"  {n} followers, {res['consenting']} consented: pipeline {res['rate']:.0f} notices/s "
                f"({res['elapsed']:.1f} s for the push)  tight loop {res['base']:.0f} notices/s  ratio {ratio:.2f} "
                f"(target >= 0.7: {'met' if ratio >= 0.7 else 'MISSED'}); deliveries {res['statuses']}; per openid "
                f"from the fake's log: pipeline {res['check']} ({'exactly once' if once else 'NOT exactly once'}), "
                f"tight loop {res['base_check']}; load average now {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
