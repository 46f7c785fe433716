#!/usr/bin/env python
"""Benchmark of the whole inbound pipeline: a burst of follows and messages through the callback, then their
follow-ups (stages, scores, journeys, replies, profile fetches) in Celery, until nothing is pending.

    .venv/bin/python bench/pipeline.py                                  # bursts of 10,000 then 100,000
    .venv/bin/python bench/pipeline.py --sizes 2000 --processes 3 --threads 3

What it does, per size (a burst of N interactions: --follow-share of them follows of new subscribers, the rest
text messages from those subscribers, each with a unique MsgId):
  1. empties its own database (DATABASE_URL, default .../wcrm_bench_pipeline, created and migrated), loads the
     conversations examples (score rules, auto-replies, a welcome journey on follow) and seeds the fake WeChat
     server (manage.py fake_wechat) with the N subscribers, so that profile fetches and replies succeed;
  2. runs the product as in production on one machine: gunicorn (--web-workers sync workers, the product's
     wechat_crm.wsgi), a Celery worker (--worker-concurrency processes on --worker-queues) and a real celery beat;
  3. builds every request first (signed, encrypted: WeChat's safe mode), then sends them from --processes load
     processes x --threads threads over raw sockets, follows first; the load processes' CPU time is printed, so
     that one can see the client is not the bottleneck;
  4. waits until nothing is pending: no interaction unprocessed (the outbox), no profile to fetch, no reply or
     journey message queued or sending, Celery's queues empty;
  5. prints the ingest rate (accepted callbacks / time to accept them), the end-to-end rate (interactions / time
     until nothing is pending, from the first request), the drain ratio (that time / the ingest time) and the
     worker's peak memory (RSS of the worker and its pool, sampled every 50 ms), and checks that every accepted
     callback is stored exactly once;
  6. the welcome journey's first message, from the fake's log: how many went out, how many within 60 s of the
     follow's arrival (WeChat's minute after a follow), and per fifth of the follows (oldest first) the worst wait
     of their follow-ups (claimed - received) and the median and worst lag of their welcome.
Targets: drain ratio <= 1.2 at the callback's full rate; worker peak RSS at the largest size within 20% of
that at the smallest. Exits 1 when one is missed.

REDIS_URL (default redis://127.0.0.1:6379/7, flushed at the start) is the broker, cache and token store of the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CELERY = str(Path(sys.executable).with_name("celery"))

from bench.common import ensure_database, free_port  # noqa: E402
from bench.push import MemorySampler, stop_worker  # noqa: E402
from bench.webhook import ACCOUNT, AES_KEY, APP_ID, TOKEN, request_bytes, safe_mode_request, send, start_server  # noqa: E402
from wechat_crm.wechat import crypto  # noqa: E402 - pure modules, no Django needed in the load processes
from wechat_crm.wechat import xml as wxml  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/wcrm_bench_pipeline"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
CALLBACK = "/wechat/callback/"
CUSTOM_SEND = "/cgi-bin/message/custom/send"
QUEUES = ("inbound", "outbound", "default", "reports")
WORDS = ["你好", "价格", "hello", "优惠", "怎么购买", "谢谢", "TD", "帮助"]


# --- Payloads and load ------------------------------------------------------------------------------------------------


def openid_of(run_id: str, user: int) -> str:
    return f"oPipe{run_id}u{user:08d}"


def build_requests(index: int, processes: int, follows: int, messages: int, run_id: str) -> list[dict[str, str]]:
    """This process's share of the burst: its users' follows first, then their messages. Each is stamped
    (CreateTime), encrypted (WeChat's safe mode) and signed when it is sent (`signed_request`)."""
    documents = []
    users = list(range(index, follows, processes))
    for user in users:
        documents.append(
            {"ToUserName": ACCOUNT, "FromUserName": openid_of(run_id, user), "MsgType": "event",
             "Event": "subscribe", "EventKey": ""}
        )  # fmt: skip
    for i in range(index, messages, processes):
        user = i % follows
        documents.append(
            {"ToUserName": ACCOUNT, "FromUserName": openid_of(run_id, user), "MsgType": "text",
             "Content": f"{WORDS[i % len(WORDS)]} {i}", "MsgId": f"9{run_id}{i:010d}"}
        )  # fmt: skip
    return documents


def signed_request(document: dict[str, str], cipher: crypto.MessageCipher) -> bytes:
    """Stamped, encrypted and signed when it is sent, as WeChat does: the CreateTime is the moment of sending (the
    product's customer-service window after a follow starts then), and a burst longer than the callback's accepted
    clock skew (WECHAT_CALLBACK_MAX_CLOCK_SKEW) must not be refused for the age of requests built before it began."""
    now = int(time.time())
    encrypted = cipher.encrypt(wxml.render({**document, "CreateTime": now}), APP_ID)
    query, body = safe_mode_request(encrypted, openid=document["FromUserName"], timestamp=now)
    return request_bytes(CALLBACK, query, body)


def load_process(index, processes, threads, follows, messages, run_id, port, ready, start, results):
    requests = build_requests(index, processes, follows, messages, run_id)
    ready.put(index)
    start.wait()
    cpu_before = time.process_time()
    cursor, lock = iter(requests), threading.Lock()
    cipher = crypto.MessageCipher(AES_KEY)
    counts = {"ok": 0, "errors": 0, "last": 0.0}

    def worker() -> None:
        ok = errors = 0
        while True:
            with lock:
                item = next(cursor, None)
            if item is None:
                break
            raw, status = signed_request(item, cipher), 0
            for _attempt in range(3):  # as WeChat does: a callback that failed is sent again (same MsgId)
                try:
                    status = send(port, raw)
                except OSError:
                    status = 0
                if status == 200:
                    break
            ok, errors = ok + (status == 200), errors + (status != 200)
        with lock:
            counts["ok"] += ok
            counts["errors"] += errors
            counts["last"] = max(counts["last"], time.time())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put((index, counts["ok"], counts["errors"], counts["last"], time.process_time() - cpu_before))


# --- Product processes and the pending work -------------------------------------------------------------------------


def start_celery(env: dict, args, log: Path) -> tuple[subprocess.Popen, subprocess.Popen]:
    worker = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "worker", "-Q", args.worker_queues, "-c", str(args.worker_concurrency),
         "-l", "WARNING", "-n", f"pipeline-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    schedule = Path(tempfile.mkdtemp(prefix="pipeline-beat-")) / "schedule"
    beat = subprocess.Popen(
        [CELERY, "-A", "wechat_crm", "beat", "-l", "WARNING", "--schedule", str(schedule)],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    from wechat_crm.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"celery worker exited:\n{log.read_text()[-3000:]}")
        try:
            if app.control.ping(timeout=0.5):
                return worker, beat
        except Exception:  # noqa: S110 - broker not ready yet
            pass
        time.sleep(0.3)
    raise SystemExit("celery worker did not answer a ping within 60 s")


def pending(conn, redis) -> dict[str, int]:
    """Everything the burst still owes: counted in the database and in the broker, not from our own bookkeeping."""
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "interactions": one("SELECT count(*) FROM accounts_interaction WHERE processed_at IS NULL"),
        "profiles": one(
            "SELECT count(*) FROM accounts_subscriber WHERE is_following "
            "AND (profile_fetched_at IS NULL OR profile_fetched_at < subscribed_at)"
        ),
        "replies": one("SELECT count(*) FROM conversations_outboundmessage WHERE status IN ('queued', 'sending')"),
        "queued tasks": sum(redis.llen(q) for q in QUEUES),
    }


def welcome_outcome(conn, fake) -> dict:
    """The welcome journey's first message (sent on follow, inside WeChat's one-minute window after it): how many
    the fake WeChat accepted (its log, one per openid at most), how many the product skipped and why (its step runs'
    reason codes), and how many are still queued or sending."""
    (text,) = conn.execute(
        "SELECT s.text FROM conversations_journeystep s JOIN conversations_journey j ON j.id = s.journey_id "
        "WHERE j.trigger = 'follow' AND s.position = 0 ORDER BY s.id LIMIT 1"
    ).fetchone()
    sent: Counter = Counter()
    first_sent: dict[str, float] = {}  # openid -> when the fake accepted their welcome
    since = 0
    while page := fake.calls(CUSTOM_SEND, errcode=0, since_id=since, limit=20000):
        for call in page:
            if text in json.dumps(call["body"], ensure_ascii=False):
                sent[call["body"].get("touser")] += 1
                first_sent.setdefault(call["body"].get("touser"), call["at"])
        since = page[-1]["id"]
    skipped = dict(
        conn.execute(
            "SELECT split_part(r.detail, ':', 1), count(*) FROM conversations_journeysteprun r "
            "JOIN conversations_journeystep s ON s.id = r.step_id JOIN conversations_journey j ON j.id = s.journey_id "
            "WHERE j.trigger = 'follow' AND s.position = 0 AND r.outcome <> 'done' GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
    )
    # Queued by the step, then kept back by the send policy when the worker was about to send it (the window closed).
    for reason, count in conn.execute(
        "SELECT 'at send: ' || o.skip_reason, count(*) FROM conversations_outboundmessage o "
        "WHERE o.source = 'journey' AND o.status = 'skipped' AND o.text LIKE %s GROUP BY 1",
        [f"%{text}%"],
    ).fetchall():
        skipped[reason] = count
    # Per follow, oldest received first: how long its follow-ups waited (the claim marks it processed) and when its
    # welcome reached the fake, from the follow's arrival.
    follows = conn.execute(
        "SELECT s.openid, extract(epoch FROM i.received_at), extract(epoch FROM i.processed_at) "
        "FROM accounts_interaction i JOIN accounts_subscriber s ON s.id = i.subscriber_id "
        "WHERE i.kind = 'subscribe' ORDER BY i.received_at, i.id"
    ).fetchall()
    fifths = []
    for n in range(5):
        part = follows[n * len(follows) // 5 : (n + 1) * len(follows) // 5]
        claimed = [float(done) - float(at) for _o, at, done in part if done is not None]
        welcomed = [first_sent[o] - float(at) for o, at, _d in part if o in first_sent]
        fifths.append({
            "follow-ups max": round(max(claimed, default=0.0), 1),
            "welcome p50": round(sorted(welcomed)[len(welcomed) // 2], 1) if welcomed else None,
            "welcome max": round(max(welcomed, default=0.0), 1),
            "in time": sum(1 for lag in welcomed if lag < 60),
        })  # fmt: skip
    in_time = sum(f["in time"] for f in fifths)
    return {"sent": len(sent), "sent twice": sum(1 for n in sent.values() if n > 1), "skipped": skipped,
            "in time": in_time, "fifths": fifths}  # fmt: skip


def prepare(n_follows: int, fake, run_id: str) -> None:
    from django.core.management import call_command
    from django.db import connection

    from content.models import SendPolicy

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE accounts_subscriber, accounts_interaction, accounts_followevent, conversations_journey, "
            "conversations_autoreplyrule, conversations_scorerule RESTART IDENTITY CASCADE"
        )
    call_command("conversations_seed_examples", verbosity=0)
    policy = SendPolicy.current()
    policy.quiet_hours_enabled = False
    policy.save()
    # The burst posts straight to the callback without telling the fake what each person sent, so the fake cannot
    # know their customer-service windows: its enforcement is off here (the window is tested in tests/), and the
    # welcome journey's messages go out as in the earlier runs.
    fake.reset(job_finish_events=False, enforce_cs_window=False)
    fake.clear_calls()
    for start in range(0, n_follows, 20000):
        users = [{"openid": openid_of(run_id, u), "subscribe": 1} for u in range(start, min(n_follows, start + 20000))]
        fake.add_users(users)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def run_burst(n: int, args, env: dict, port: int, fake, database_url: str, redis) -> dict:
    import psycopg

    follows = max(1, round(n * args.follow_share))
    messages = n - follows
    run_id = f"{int(time.time()) % 100000:05d}"
    prepare(follows, fake, run_id)
    redis.flushdb()
    log = Path(tempfile.mkstemp(prefix="bench-pipeline-", suffix=".log")[1])
    worker, beat = start_celery(env, args, log)
    sampler = MemorySampler(worker.pid)
    sampler.start()
    ctx = mp.get_context("spawn")  # not fork: kombu's after-fork hooks hang on the parent's broker connection
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=load_process,
            args=(i, args.processes, args.threads, follows, messages, run_id, port, ready, start, results),
        )
        for i in range(args.processes)
    ]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=600)
        time.sleep(1.0)
        idle_kb = sampler.peak_total
        load_before = os.getloadavg()[0]
        started = time.time()
        start.set()
        outcome = {"ok": 0, "errors": 0, "last": started, "cpu": 0.0}
        for _ in procs:
            _, ok, errors, last, cpu = results.get(timeout=args.timeout)
            outcome["ok"] += ok
            outcome["errors"] += errors
            outcome["last"] = max(outcome["last"], last)
            outcome["cpu"] += cpu
        for p in procs:
            p.join()
        ingest = outcome["last"] - started
        deadline = time.monotonic() + args.timeout
        with psycopg.connect(database_url, autocommit=True) as conn:
            zero_since, cleared, traced = None, {}, 0.0
            while True:
                left = pending(conn, redis)
                for what, count in left.items():  # when each kind of pending work last reached zero
                    if count:
                        cleared.pop(what, None)
                    else:
                        cleared.setdefault(what, round(time.time() - started, 1))
                if not any(left.values()):
                    zero_since = zero_since or time.time()
                    if time.time() - zero_since >= 1.0:  # still nothing after a second: drained
                        break
                else:
                    zero_since = None
                if os.environ.get("PIPELINE_BENCH_TRACE") and time.time() - traced >= 5:  # what is still queued
                    traced = time.time()
                    names: dict[str, int] = {}
                    for q in QUEUES:
                        for raw in redis.lrange(q, 0, -1):
                            name = json.loads(raw).get("headers", {}).get("task", "?")
                            names[name] = names.get(name, 0) + 1
                    print(f"    {traced - started:6.1f} s: {left} {names}", flush=True)
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise SystemExit(f"not drained: {left}\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
            drained = zero_since - started
            stored = conn.execute("SELECT count(*) FROM accounts_interaction").fetchone()[0]
            follow_ups = {
                "score entries": conn.execute("SELECT count(*) FROM conversations_scoreentry").fetchone()[0],
                "messages sent": conn.execute(
                    "SELECT count(*) FROM conversations_outboundmessage WHERE status = 'sent'"
                ).fetchone()[0],
                "profiles fetched": conn.execute(
                    "SELECT count(*) FROM accounts_subscriber WHERE profile_fetched_at IS NOT NULL"
                ).fetchone()[0],
            }
            welcome = welcome_outcome(conn, fake)
    finally:
        sampler.stop.set()
        for p in procs:
            if p.is_alive():
                p.kill()
        stop_worker(beat)
        stop_worker(worker)
    return {
        "n": n,
        "follows": follows,
        "messages": messages,
        "ingest": ingest,
        "drained": drained,
        "accepted": outcome["ok"],
        "errors": outcome["errors"],
        "client_cpu": outcome["cpu"],
        "stored": stored,
        "follow_ups": follow_ups,
        "welcome": welcome,
        "cleared": cleared,
        "idle_mb": idle_kb / 1024,
        "peak_mb": sampler.peak_total / 1024,
        "peak_one_mb": sampler.peak_one / 1024,
        "load": (load_before, os.getloadavg()[0]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="interactions per burst (default 10000,100000)")
    parser.add_argument("--follow-share", type=float, default=0.2, help="share of follows in a burst (default 0.2)")
    parser.add_argument("--processes", type=int, default=3, help="load processes (default 3)")
    parser.add_argument("--threads", type=int, default=3, help="connections in flight per load process (default 3)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--worker-queues", default="inbound,outbound,default,reports")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--port", type=int, default=0, help="the fake WeChat's port, the callback's the next one")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if min(sizes) < 10 or not 0 < args.follow_share <= 1:
        parser.error("sizes must be at least 10 and --follow-share in (0, 1]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        WECHAT_TOKEN=TOKEN,
        WECHAT_APP_ID=APP_ID,
        WECHAT_ENCODING_AES_KEY=AES_KEY,
        WECHAT_ENCODING_AES_KEY_PREVIOUS="",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    fake_port = args.port or free_port()
    fake_url = f"http://127.0.0.1:{fake_port}/"
    os.environ["WECHAT_API_BASE_URL"] = fake_url
    fake_proc = subprocess.Popen(
        [sys.executable, "manage.py", "fake_wechat", "--port", str(fake_port), "--quiet", "--workers", "1",
         "--state-dir", tempfile.mkdtemp(prefix="bench-pipeline-fake-")],
        cwd=ROOT, env={**os.environ},
    )  # fmt: skip
    server = None
    try:
        ensure_database(database_url)
        import django
        import redis as redis_lib

        django.setup()
        from django.conf import settings

        from wechat_crm.wechat.fake.control import FakeWeChat

        redis = redis_lib.Redis.from_url(redis_url)
        fake = FakeWeChat(fake_url)
        fake.wait_ready(30)
        fake.reset(appid=settings.WECHAT_APP_ID, secret=settings.WECHAT_APP_SECRET, job_finish_events=False,
                   enforce_cs_window=False)  # fmt: skip
        port = args.port + 1 if args.port else free_port()
        server = start_server(port, {**os.environ}, workers=args.web_workers)
        print(
            f"gunicorn {args.web_workers} sync workers; Celery worker {args.worker_concurrency} processes on "
            f"{args.worker_queues} and a beat; load {args.processes} processes x {args.threads} connections; "
            f"{args.follow_share:.0%} follows; {os.cpu_count()} CPUs",
            flush=True,
        )
        results = []
        for n in sizes:
            r = run_burst(n, args, {**os.environ}, port, fake, database_url, redis)
            results.append(r)
            ratio = r["drained"] / r["ingest"]
            print(
                f"  {n:>7} interactions ({r['follows']} follows, {r['messages']} messages): "
                f"ingest {r['accepted'] / r['ingest']:6.0f}/s ({r['ingest']:.1f} s; load processes used "
                f"{r['client_cpu'] / r['ingest'] / args.processes:.0%} of a core each)  "
                f"end to end {r['accepted'] / r['drained']:6.0f}/s ({r['drained']:.1f} s)  "
                f"drain ratio {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'MISSED'})  "
                f"worker RSS peak {r['peak_mb']:.0f} MB (idle {r['idle_mb']:.0f}, largest process "
                f"{r['peak_one_mb']:.0f})  stored {r['stored']} for {r['accepted']} accepted, {r['errors']} refused; "
                f"{r['follow_ups']}; drained at (s) {r['cleared']}; "
                f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}",
                flush=True,
            )
            w = r["welcome"]
            print(
                f"    welcome (journey) messages: {w['sent']} of {r['follows']} follows sent (fake's log; "
                f"{w['sent twice']} openids twice), {w['in time']} within 60 s of the follow's arrival; skipped by "
                f"reason {w['skipped']}",
                flush=True,
            )
            for n, fifth in enumerate(w["fifths"], 1):
                print(f"      follows, fifth {n} (oldest first): {fifth}", flush=True)
        ok = all(
            r["stored"] == r["accepted"] and not r["errors"] and r["drained"] / r["ingest"] <= 1.2 for r in results
        )
        if len(results) > 1:
            small, large = results[0], results[-1]
            growth = large["peak_mb"] / small["peak_mb"] - 1
            flat = growth <= 0.2
            ok = ok and flat
            print(
                f"worker memory: peak {large['peak_mb']:.0f} MB at {large['n']} vs {small['peak_mb']:.0f} MB at "
                f"{small['n']} ({growth * 100:+.1f}%; target within 20%: {'met' if flat else 'MISSED'})"
            )
        return 0 if ok else 1
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        fake_proc.terminate()
        fake_proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
