#!/usr/bin/env python
"""Benchmark of the client's send path against the fake WeChat server.

    REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/wechat_send.py --messages 20000

What it does, in one run:
  1. starts the fake WeChat server (manage.py fake_wechat, 2 gunicorn workers) on a free port, with --messages
     followers;
  2. baseline: posts --messages template messages from a tight urllib3 loop, 4 threads, keep-alive, a token
     fetched once: the ceiling the fake server allows;
  3. `client.send_template_many(page, threads=4)` in pages of --page messages: the hot path pushes use (shared token,
     rate limit per group through Redis, retry policy, one classified result per message);
  4. `client.message.send_template(...)` from 4 threads: wechatpy's generic API path on our transport;
  5. prints messages/s of each and the ratio to the baseline, and checks the fake recorded one success per message.

The template group's rate limit is lifted for the run (WECHAT_RATE_LIMITS=template=0) so the figures measure the
client; pass --keep-rate-limit to measure with the configured limit. REDIS_URL (default redis://127.0.0.1:6379/14,
the bench's own db) holds the token and the buckets; the bench deletes its keys at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, run_threads, tight_loop  # noqa: E402


def start_fake(users: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    state_dir = tempfile.mkdtemp(prefix="bench-fake-wechat-")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "fake_wechat", "--port", str(port), "--quiet", "--workers", "2",
         "--state-dir", state_dir],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.base"},
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}/"


def message(openid: str, i: int) -> dict:
    return {
        "touser": openid,
        "template_id": "tpl_bench",
        "url": f"https://example.com/c/{i}",
        "data": {"first": {"value": f"Hello {i}"}, "keyword1": {"value": "bench"}, "remark": {"value": "thanks"}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--page", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--keep-rate-limit", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wechat_crm.settings.base")
    os.environ["LOG_LEVEL"] = "WARNING"
    if not args.keep_rate_limit:
        os.environ["WECHAT_RATE_LIMITS"] = "template=0"
    proc, url = start_fake(args.messages)
    os.environ["WECHAT_API_BASE_URL"] = url
    try:
        import django

        django.setup()
        from django.conf import settings

        from wechat_crm.wechat.client import get_client
        from wechat_crm.wechat.fake.control import FakeWeChat
        from wechat_crm.wechat.ratelimit import redis_client
        from wechat_crm.wechat.tokens import cache_key

        fake = FakeWeChat(url)
        fake.wait_ready(30)
        fake.reset(appid=settings.WECHAT_APP_ID, secret=settings.WECHAT_APP_SECRET, job_finish_events=False)
        openids = fake.add_users(generate=args.messages)
        redis_client().delete(cache_key(settings.WECHAT_APP_ID))
        n = len(openids)
        print(f"fake WeChat at {url} (2 workers), {n} followers, {args.threads} threads")

        rate_base = tight_loop(url, fake.fetch_token(), openids, args.threads, message)
        print(f"  tight urllib3 loop (baseline)         {rate_base:8.0f} msg/s")

        fake.clear_calls()
        client = get_client()
        client.tokens.get()
        pages = [[message(o, i + p) for i, o in enumerate(openids[p : p + args.page])] for p in range(0, n, args.page)]
        started = time.perf_counter()
        failed = 0
        for page in pages:
            failed += sum(1 for r in client.send_template_many(page, threads=args.threads) if not r.ok)
        rate_many = n / (time.perf_counter() - started)
        ok = fake.count("/cgi-bin/message/template/send", errcode=0)
        print(
            f"  client.send_template_many (page {args.page})  {rate_many:8.0f} msg/s"
            f"  ratio {rate_many / rate_base:.2f}  failed {failed}  recorded ok {ok}/{n}"
        )

        fake.clear_calls()
        subset = openids[: min(n, 5000)]

        def generic(k: int) -> None:
            for i in range(k, len(subset), args.threads):
                m = message(subset[i], i)
                client.message.send_template(m["touser"], m["template_id"], m["data"], url=m["url"])

        rate_generic = len(subset) / run_threads(args.threads, generic)
        print(f"  client.message.send_template (wechatpy API, {len(subset)})  {rate_generic:8.0f} msg/s"
              f"  ratio {rate_generic / rate_base:.2f}")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
        try:
            from wechat_crm.wechat.ratelimit import redis_client

            r = redis_client()
            for key in [*r.scan_iter("wechat:*")]:
                r.delete(key)
        except Exception:  # noqa: S110 - best-effort clean-up
            pass


if __name__ == "__main__":
    main()
