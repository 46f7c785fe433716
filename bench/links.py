#!/usr/bin/env python
"""Benchmark of tracked-link redirects (/r/<token>), the hot path after a push to many people, against a bare view
served the same way.

    .venv/bin/python bench/links.py            # DATABASE_URL default .../wcrm_bench_links, REDIS_URL default db 7

What it does:
  1. creates and migrates its own database, empties the accounts tables and seeds --subscribers followers (COPY,
     analysed), an article and a push; signs one tracked-link token per subscriber (content.links.token_make, as a
     push does), so that every request is a different person's click;
  2. starts gunicorn (2 sync workers, the product's wechat_crm.wsgi application with settings bench.settings): the
     redirect and the bare view (/bench/bare/, answers "success") both go through URL resolution and the whole
     middleware chain, as every path but the WeChat callback does in the product;
  3. drives both in short interleaved rounds (--rounds of --duration seconds after a short warm-up: bare, redirect,
     redirect, bare, bare, redirect ...) from --processes load processes x --threads connections (raw sockets;
     gunicorn's sync workers close each connection);
  4. waits for the click buffer's flush: the redirect answers once Redis holds the click (content.clicks), and the
     drain (content.tasks.link_clicks_drain, run here in this process until the buffer is empty, as a worker would)
     stores the clicks by batches; its time and rate are printed;
  5. prints req/s, p50 and p99 of each, the gunicorn workers' CPU per request answered (user + system, from /proc,
     measured around each round, warm-up included; Redis's own CPU not included: the server is shared) and the
     ratio redirect/bare two ways: the median of the round-by-round ratios, THE TARGET'S FIGURE (the two run side
     by side in each round, so a swing of the machine's load between rounds cancels out), and the ratio of the
     mean rates; then CPU per request bare/redirect, which does not depend on how busy the machine is: on a shared
     machine the fairest cross-check. It checks that every redirect answered (302) is stored exactly once: the
     link_click interactions in the database equal the 302s counted by the clients.
Target: redirect >= 0.5 x the bare view (the median of the rounds' ratios); each click stored once. Exits 1 when
missed.

With --wechat a third series runs in the same rounds: the same links opened with WeChat's user agent, whose first hop
is a 302 to WeChat's authorise page (web authorisation: a signed state, no database query, nothing stored; the
click is stored on the way back, which needs WeChat). Printed beside the others; the target applies to it too.

The drain tasks the redirect asks for and the clicks' follow-ups are handed to the Celery broker (REDIS_URL, flushed
at the end); no worker runs: the drain runs in this process after the rounds, not beside them, so the redirect's
figure does not include the drain's CPU (printed apart: clicks stored per second of drain).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ensure_database, free_port, workers_cpu_seconds  # noqa: E402
from bench.webhook import send, start_server  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/wcrm_bench_links"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"


WECHAT_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 MicroMessenger/8.0.49 NetType/WIFI"


def get_bytes(path: str, user_agent: str = "") -> bytes:
    ua = f"User-Agent: {user_agent}\r\n" if user_agent else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{ua}Connection: close\r\n\r\n".encode("ascii")


def load_process(port, paths, threads, warmup, duration, ready, start, results, user_agent="") -> None:
    requests = [get_bytes(p, user_agent) for p in paths]
    ready.put(1)
    start.wait()
    measure_from, stop_at = time.time() + warmup, time.time() + warmup + duration
    cursor, lock = iter(requests), threading.Lock()
    totals = {"ok": 0, "measured": 0, "errors": 0, "exhausted": 0, "latencies": []}

    def worker() -> None:
        ok = measured = errors = 0
        latencies = []
        while time.time() < stop_at:
            with lock:
                raw = next(cursor, None)
            if raw is None:
                totals["exhausted"] = 1
                break
            t0 = time.perf_counter()
            try:
                status = send(port, raw)
            except OSError:
                status = 0
            if status in (200, 302):
                ok += 1
                if time.time() >= measure_from:
                    measured += 1
                    latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1
        with lock:
            totals["ok"] += ok
            totals["measured"] += measured
            totals["errors"] += errors
            totals["latencies"] += latencies

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    results.put(totals)


def drive(port: int, paths: list[str], args, user_agent: str = "") -> dict:
    """One round: `paths` shared out among the load processes, each request sent once."""
    ctx = mp.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=load_process,
            args=(
                port,
                paths[k :: args.processes],
                args.threads,
                args.warmup,
                args.duration,
                ready,
                start,
                results,
                user_agent,
            ),
        )
        for k in range(args.processes)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    start.set()
    out = {"ok": 0, "measured": 0, "errors": 0, "exhausted": 0, "latencies": []}
    for _ in procs:
        r = results.get(timeout=args.warmup + args.duration + 120)
        for key in out:
            out[key] += r[key]
    for p in procs:
        p.join()
    return out


def timed_cpu(parent: int, run) -> dict:
    """run() with the CPU its requests cost the gunicorn workers (warm-up included: counted per request answered)."""
    before = workers_cpu_seconds(parent)
    result = run()
    result["cpu"] = workers_cpu_seconds(parent) - before
    return result


def summarize(rounds: list[dict], seconds: float) -> dict:
    latencies = sorted(x for r in rounds for x in r["latencies"])

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "rps": sum(r["measured"] for r in rounds) / (seconds * len(rounds)),
        "per_round": [r["measured"] / seconds for r in rounds],
        "p50": pct(0.5),
        "p99": pct(0.99),
        "ok": sum(r["ok"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "exhausted": any(r["exhausted"] for r in rounds),
        "cpu_us": 1e6 * sum(r.get("cpu", 0) for r in rounds) / max(1, sum(r["ok"] for r in rounds)),
    }


def by_round(a: dict, b: dict) -> tuple[float, list[float]]:
    """The median of the ratios a/b round by round (each round ran both side by side), and those ratios."""
    each = [x / y if y else 0.0 for x, y in zip(a["per_round"], b["per_round"], strict=True)]
    return (statistics.median(each) if each else 0.0), each


def prepare(subscribers: int) -> list[str]:
    """Seed followers, an article and a push; one signed token per follower."""
    import django

    django.setup()
    from django.db import connection

    from bench.webhook import seed
    from content import links
    from content.models import Article, Push

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE accounts_followevent, accounts_interaction, accounts_subscriber, content_push, content_article "
            "RESTART IDENTITY CASCADE"
        )
    seed(subscribers, 0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    article = Article.objects.create(title="Bench article", slug="bench-article", body="# Bench")
    push = Push.objects.create(name="Bench push", article=article)
    link_id = links.link_id_for("https://example.com/articles/bench?from=push")
    tokens = [
        links.token_make(links.LinkPayload(subscriber_id=s, push_id=push.pk, content_id=article.pk, link_id=link_id))
        for s in range(1, subscribers + 1)
    ]
    random.Random(7).shuffle(tokens)
    return tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds per round (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each (default 0.5)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=100_000, help="followers, one token each (100,000)")
    parser.add_argument("--wechat", action="store_true", help="also the first hop of the links opened in WeChat")
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port (default: a free one)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    ensure_database(database_url)
    tokens = prepare(args.subscribers)
    import redis as redis_lib

    from accounts.models import Interaction

    redis_lib.Redis.from_url(redis_url).flushdb()
    port = args.port or free_port()
    load_before = os.getloadavg()[0]
    server = start_server(port, {**os.environ})
    rounds: dict[str, list[dict]] = {"bare": [], "redirect": [], "wechat": []}
    chunk = len(tokens) // args.rounds  # each round clicks its own tokens: no click is ever a replay
    try:
        for k in range(args.rounds):
            paths = [f"/r/{t}" for t in tokens[k * chunk : (k + 1) * chunk]]
            runs = {
                "bare": lambda: drive(port, ["/bench/bare/"] * 50_000, args),
                "redirect": lambda: drive(port, paths, args),  # noqa: B023
            }
            if args.wechat:  # the same round's tokens: the first hop stores nothing
                runs["wechat"] = lambda: drive(port, paths, args, user_agent=WECHAT_UA)  # noqa: B023
            # Every other round in the reverse order, so that a drift of the machine's load weighs on each alike.
            for name in list(runs) if k % 2 == 0 else list(runs)[::-1]:
                rounds[name].append(timed_cpu(server.pid, runs[name]))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    load_after = os.getloadavg()[0]
    try:
        from content import clicks
    except ImportError:  # the product before the click buffer (ca9458d), so that this bench measures it too
        clicks = None
    drain_started, drain_deadline = time.perf_counter(), time.time() + 600
    while clicks is not None and clicks.pending() and time.time() < drain_deadline:
        clicks.clicks_drain()
    drain_seconds = time.perf_counter() - drain_started
    left_in_buffer = clicks.pending() if clicks is not None else 0
    stored = Interaction.objects.filter(kind="link_click").count()
    redis_lib.Redis.from_url(redis_url).flushdb()
    bare, redirect = summarize(rounds["bare"], args.duration), summarize(rounds["redirect"], args.duration)
    print(
        f"gunicorn 2 sync workers, the whole middleware chain for both; {args.processes} load processes x "
        f"{args.threads} connections; {args.rounds} interleaved rounds of {args.duration:g} s after "
        f"{args.warmup:g} s warm-up; {args.subscribers:,} followers; load average {load_before:.1f} -> "
        f"{load_after:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"{'':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us':>7}   req/s per round")
    series = [("bare view", bare), ("redirect", redirect)]
    wechat = summarize(rounds["wechat"], args.duration) if args.wechat else None
    if wechat is not None:
        series.append(("in WeChat", wechat))
    for name, r in series:
        per_round = " ".join(f"{x:.0f}" for x in r["per_round"])
        cpu = f"{r['cpu_us']:7.0f}" if r["cpu_us"] else f"{'-':>7}"
        print(f"{name:10} {r['rps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:7d} {cpu}   {per_round}")
    ratio, each = by_round(redirect, bare)
    of_means = redirect["rps"] / bare["rps"] if bare["rps"] else 0.0
    once = stored == redirect["ok"] and not left_in_buffer
    print(
        f"ratio redirect/bare: {ratio:.2f} (THE TARGET'S FIGURE: median of the rounds' ratios "
        f"{' '.join(f'{x:.2f}' for x in each)}; target >= 0.5: {'met' if ratio >= 0.5 else 'MISSED'}), "
        f"{of_means:.2f} (ratio of the mean rates)"
    )
    print(
        f"CPU per request, bare/redirect (the same scale as the target's figure; load-independent): "
        f"{bare['cpu_us'] / redirect['cpu_us'] if redirect['cpu_us'] else 0:.2f} for the gunicorn workers "
        f"({bare['cpu_us']:.0f} / {redirect['cpu_us']:.0f} us)"
    )
    wechat_ok = True
    if wechat is not None:
        wechat_ratio = by_round(wechat, bare)[0]
        wechat_ok = wechat_ratio >= 0.5 and not wechat["errors"]
        print(f"ratio in WeChat (first hop, to the authorise page)/bare: {wechat_ratio:.2f} (median of the rounds' "
              f"ratios; target >= 0.5: {'met' if wechat_ratio >= 0.5 else 'MISSED'}); CPU per request bare/in WeChat "
              f"{bare['cpu_us'] / wechat['cpu_us'] if wechat['cpu_us'] else 0:.2f}")  # fmt: skip
    if clicks is not None:
        print(f"drain of the click buffer: {stored} clicks stored in {drain_seconds:.2f} s "
              f"({stored / drain_seconds if drain_seconds else 0:.0f} clicks/s, one process); left in the buffer: "
              f"{left_in_buffer}")  # fmt: skip
    print(f"clicks stored: {stored} for {redirect['ok']} redirects answered (each stored once: {once})")
    if redirect["exhausted"]:
        print("note: the load ran out of tokens; raise --subscribers")
    return 0 if ratio >= 0.5 and once and not redirect["errors"] and wechat_ok else 1


if __name__ == "__main__":
    sys.exit(main())
