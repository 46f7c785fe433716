#!/usr/bin/env python
"""The admin and the API at scale: each page a marketer or an operator opens, timed on the 1M-subscriber /
10M-interaction dataset of bench/funnel.py.

    .venv/bin/python bench/funnel.py                 # generates the dataset (wcrm_bench_funnel), once
    .venv/bin/python bench/admin.py                  # then this, on the same database

What it does:
  1. on the database of FUNNEL_BENCH_DATABASE_URL (default .../wcrm_bench_funnel, already generated), adds once what
     the funnel's generator does not write: a push to everyone with one delivery per subscriber (1M rows), a
     conversation for one subscriber in ten, and a segment; then ANALYZE (no VACUUM: the tables are as they are).
     Rows written with COPY bypass the product, so their counters (the push's, content.services.deliveries.tallies;
     the channels', campaigns.tallies) are backfilled by the rebuild commands a deployment runs once, timed and
     printed apart (never inside a page's time);
  2. requests each page in-process through Django's test client, logged in as a superuser, with the whole
     middleware chain, as a browser's request would go (--repeat times; it prints the first and the best);
  3. baseline, served the same way and timed right before each page (the machine's load moves): the admin's list of
     a small table (topics), the floor of any admin list. Each row prints the 1-minute load average, and beside
     each time the CPU time the page took in this process (its Python work: the rest of the wall time is the
     database and, on a loaded machine, waiting for a core).
Target: each page <= 500 ms. Exits 1 when one is missed or does not answer 200.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/wcrm_bench_funnel"
TARGET_MS = 500


def supplement() -> dict:
    """The rows the funnel's generator does not write: deliveries of a push to everyone, conversations, a segment."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Subscriber
    from bench.funnel import copy_value, model_columns
    from campaigns.models import Campaign, ChannelTally
    from content.models import Delivery, Push, PushTally, Segment
    from conversations.models import Conversation

    segment, _ = Segment.objects.get_or_create(
        name="bench: interactive followers",
        defaults={"rules": {"op": "and", "rules": [{"type": "stage", "in": ["interactive"]}]}},
    )
    push = Push.objects.filter(name="bench: to everyone").first()
    if push is None:
        push = Push.objects.create(name="bench: to everyone", channel="template", status=Push.Status.SENT)
    last = Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    now = timezone.now()
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur:
        if not Delivery.objects.filter(push=push).exists():
            cols, consts = model_columns(
                Delivery,
                ["push_id", "subscriber_id", "channel", "status", "attempts", "claimed_at", "sent_at", "finished_at",
                 "created_at"],
            )  # fmt: skip
            with cur.copy(f"COPY content_delivery ({', '.join(cols)}) FROM STDIN") as copy:
                for sid in range(1, last + 1):
                    status = "delivered" if sid % 10 else "failed"
                    at = now.isoformat()
                    row = [str(push.pk), str(sid), "template", status, "1", at, at, at, at, *consts]
                    copy.write("\t".join(row) + "\n")
        if not Conversation.objects.exists():
            cols, consts = model_columns(Conversation, ["subscriber_id", "unanswered", "last_inbound_at"])
            with cur.copy(f"COPY conversations_conversation ({', '.join(cols)}) FROM STDIN") as copy:
                for sid in range(7, last + 1, 10):
                    row = [str(sid), str(sid % 4), copy_value(now - timedelta(minutes=sid % 5000)), *consts]
                    copy.write("\t".join(row) + "\n")
        raw.commit()
        cur.execute("ANALYZE content_delivery")
        cur.execute("ANALYZE conversations_conversation")
    raw.commit()
    backfill = {}
    if push.started_at is None:
        Push.objects.filter(pk=push.pk).update(started_at=now - timedelta(minutes=10), finished_at=now)
    if not PushTally.objects.filter(push=push).exists():
        started = time.monotonic()
        call_command("push_tallies_rebuild", push.pk, stdout=io.StringIO())
        backfill["push_tallies_rebuild (the push's counters)"] = time.monotonic() - started
    if not ChannelTally.objects.exists():
        started = time.monotonic()
        call_command("channel_tallies_rebuild", stdout=io.StringIO())
        backfill["channel_tallies_rebuild (the channels' counters)"] = time.monotonic() - started
    campaign = Campaign.objects.order_by("pk").first()
    return {"segment": segment.pk, "push": push.pk, "campaign": campaign.pk if campaign else 0, "backfill": backfill}


def pages(ids: dict) -> list[tuple[str, str]]:
    return [
        ("admin: subscribers", "/admin/accounts/subscriber/"),
        ("admin: interactions", "/admin/accounts/interaction/"),
        ("admin: deliveries", "/admin/content/delivery/"),
        ("admin: conversations (inbox)", "/admin/conversations/conversation/"),
        ("admin: the push (its report)", f"/admin/content/push/{ids['push']}/change/"),
        ("admin: dashboard", "/admin/"),
        ("admin: the push's progress (polled)", f"/admin/content/push/{ids['push']}/progress/"),
        ("API: /api/subscribers/", "/api/subscribers/"),
        ("API: a segment's live count", f"/api/segments/{ids['segment']}/"),
        ("API: the push report", f"/api/pushes/{ids['push']}/report/"),
        ("API: the push's progress", f"/api/pushes/{ids['push']}/progress/"),
        ("API: the campaign summary", f"/api/campaigns/{ids['campaign']}/summary/"),
        ("API: /api/channels/", "/api/channels/"),
        ("API: /api/interactions/", "/api/interactions/"),
        ("API: the funnel by channel", "/api/funnel/?breakdown=channel"),
    ]


def timed(client, url: str, repeat: int) -> tuple[int, float, float, float]:
    """(status, first ms, best ms, CPU ms of this process in the best run: the page's own Python work, without the
    database's time and without waiting for a core on a loaded machine)."""
    times, status = [], 0
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        response = client.get(url, HTTP_ACCEPT="text/html,application/json")
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        times.append(((time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000))
        status = response.status_code
    best = min(times)
    return status, times[0][0], best[0], best[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = os.environ.get("FUNNEL_BENCH_DATABASE_URL") or DEFAULT_DB
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    from accounts.models import Interaction, Subscriber

    setup_test_environment()
    subscribers = Subscriber.objects.order_by().count()
    interactions = Interaction.objects.order_by().values("pk").count() if subscribers < 200_000 else None
    started = time.monotonic()
    ids = supplement()
    print(f"dataset: {subscribers:,} subscribers, interactions {interactions or '(not counted)'}; "
          f"supplement ready in {time.monotonic() - started:.0f} s; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_superuser": True})
    user.is_superuser = user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    for name, seconds in ids["backfill"].items():
        print(f"backfill, once per deployment (not a page): {name} {seconds:.1f} s")
    baseline_url = "/admin/content/topic/"
    print(f"baseline: the admin's list of a small table (topics) {baseline_url}, served the same way, timed "
          "before each page")  # fmt: skip
    print(f"{'page':36} {'status':>6} {'first ms':>9} {'best ms':>8} {'cpu ms':>7} {'baseline ms':>12} "
          f"{'cpu ms':>7} {'x baseline':>10} {'load':>5}  target <= {TARGET_MS} ms")  # fmt: skip
    ok = True
    for name, url in pages(ids):
        _status, _first, base, base_cpu = timed(client, baseline_url, args.repeat)
        status, first, best, cpu = timed(client, url, args.repeat)
        met = status == 200 and best <= TARGET_MS
        ok = ok and met
        print(f"{name:36} {status:>6} {first:9.0f} {best:8.0f} {cpu:7.0f} {base:12.0f} {base_cpu:7.0f} "
              f"{best / base:10.1f} {os.getloadavg()[0]:5.1f}  {'met' if met else 'MISSED'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
