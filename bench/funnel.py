#!/usr/bin/env python
"""Benchmark of the funnel report at 1,000,000 subscribers and 10,000,000 interactions.

    .venv/bin/python bench/funnel.py                           # generate, maintain the stages, then time
    .venv/bin/python bench/funnel.py --processes 2 --batch 2000    # the catch-up's processes and claim (defaults)
    .venv/bin/python bench/funnel.py --skip-generate           # time again on the data already generated (migrated)
    .venv/bin/python bench/funnel.py --generate-only           # then --skip-generate: maintains what is pending, times
    .venv/bin/python bench/funnel.py --subscribers 200000 --interactions 2000000 --skip-raw
    .venv/bin/python bench/funnel.py --stages-from-generator   # a fast dataset for bench/admin.py (see below)

1. Creates and migrates its own database (FUNNEL_BENCH_DATABASE_URL, default .../wcrm_bench_funnel) and fills it
   with COPY: 20 channels, 50 articles, N subscribers who followed over the last 365 days (80% through a channel,
   their source channel stored as the channel attribution would have), about 10 interactions each (messages, menu
   clicks, tracked-link clicks with push and content, WeChat's send reports; their follow), all pending, and
   conversions for about 10% of them, some outside the window. No stage column is written by the generator.
2. The stage columns and the funnel summary come from the product's own stage maintenance: the generated
   interactions are the backlog an import or an outage leaves, and the product's catch-up processes it
   (accounts.catch_up.interactions_catch_up, what `manage.py interactions_catch_up` runs: --processes processes, each
   on its share of the subscribers, claiming --batch at a time in the order they were received through
   accounts.follow_ups.interactions_process, as the worker claims its smaller batches) with the funnel's follow-ups of
   the dispatch table (campaigns.events.stage_follow / stage_advance; the command runs every follow-up); then the
   conversions, by batches of 1,000 in the order they occurred, go through campaigns.events.stage_convert (as
   conversions_record runs it). Their throughput is printed, and what the summary's refresh costs: every call of it
   (its statement and the cells' triggers) is timed, in every process (the refresh always runs; earlier versions
   ran every other batch without it instead). The cells' additions are folded every 5 minutes, as the beat does; the
   whole summary and its cells are then checked against their rebuild from the stored columns.
   --stages-from-generator writes the stage columns in the generator instead (the rules of campaigns.stages, in
   Python) and rebuilds the summary from them, for a dataset in minutes (bench/admin.py's); its funnel timings are
   then not the product's maintenance's.
3. No VACUUM: the tables are ANALYZEd, then get a day of messages (1 subscriber in 30 updated) before the timing, and
   autovacuum runs as configured.
4. Times campaigns.funnel.funnel_report (best of 3) without a breakdown and with each breakdown, a hand-written SQL
   over the same stored stage columns for each (the baseline), and once (unless --skip-raw) a hand-written SQL query
   over the raw interactions and conversions that computes the same numbers overall and by channel (follow = first
   subscribe, engaged = first click/view/link_click, interactive = first interaction with >= 3 in the 30 days up to
   it on >= 2 days, converted = first conversion).
5. Prints the times side by side and checks all five breakdowns group by group against the stored-column SQL (and
   the total and channels against the raw one); exits 1 if a number differs or a report takes over 0.5 s (the target
   at 1M subscribers / 10M interactions). No planner setting is set by this bench.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/wcrm_bench_funnel"
SHANGHAI = timedelta(hours=8)  # Asia/Shanghai has no DST: local dates are UTC + 8 h
SUBSCRIBER_KINDS_SAMPLE = [("text", 50), ("link_click", 14), ("click", 6), ("view", 4), ("image", 6)]
OTHER_KINDS = [("templatesendjobfinish", 20)]


def copy_value(value) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict | list):
        value = json.dumps(value)
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def model_columns(model, given: list[str]) -> tuple[list[str], list[str]]:
    """Columns to COPY: the given ones, then every other NOT NULL column with its Django default (so that columns
    other apps add later still get a value)."""
    from django.db.models import NOT_PROVIDED

    extra, constants = [], []
    now = datetime.now(UTC)
    for field in model._meta.concrete_fields:
        if field.column in given or field.primary_key or field.null or getattr(field, "generated", False):
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        elif field.default is not NOT_PROVIDED:
            value = field.get_default()
        else:
            value = ""
        extra.append(field.column)
        constants.append(copy_value(value))
    return given + extra, constants


def interactive_at(times: list[datetime], *, n: int = 3, m: int = 2, days: int = 30) -> datetime | None:
    """campaigns.stages' rule over sorted times: the first t with >= n interactions in [t - days, t] on >= m dates
    (--stages-from-generator only)."""
    window = timedelta(days=days)
    for index, t in enumerate(times):
        inside = [x for x in times[: index + 1] if x >= t - window]
        inside += [x for x in times[index + 1 :] if x == t]  # equal times later in the list are inside too
        if len(inside) >= n and len({(x + SHANGHAI).date() for x in inside}) >= m:
            return t
    return None


def generate(*, subscribers: int, interactions: int, seed: int, stages_here: bool = False) -> None:
    """With `stages_here` (--stages-from-generator) the generator writes the stage columns itself, the interactions
    are stored processed and the summary is rebuilt from the columns: a dataset in minutes for bench/admin.py, whose
    funnel timings are then not those of the product's stage maintenance."""
    from django.db import connection

    from accounts.models import Interaction, Subscriber
    from campaigns.models import Campaign, Channel, Conversion, ConversionType
    from content.models import Article, Push

    rnd = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE accounts_interaction, accounts_subscriber, campaigns_conversion, campaigns_channeltouch, "
            "campaigns_channel, campaigns_campaign, content_article, content_push RESTART IDENTITY CASCADE"
        )
    channels = Channel.objects.bulk_create([Channel(name=f"Channel {i}", scene_str=f"bench-{i}") for i in range(20)])
    articles = Article.objects.bulk_create(
        [Article(title=f"Article {i}", slug=f"bench-article-{i}", body="-") for i in range(50)]
    )
    for i in range(5):  # 5 campaigns of 4 channels each
        Campaign.objects.create(name=f"Campaign {i}").channels.set(channels[i * 4 : i * 4 + 4])
    purchase = ConversionType.objects.get(slug="purchase")
    pushes = Push.objects.bulk_create([Push(name=f"Push {i}", article=articles[i]) for i in range(10)])

    now = datetime.now(UTC).replace(microsecond=0)
    per_sub = max(1, interactions // subscribers)
    stage_columns = ["followed_at", "engaged_at", "interactive_at", "converted_at", "engaged_content_id",
                     "engaged_push_id", "stage"] if stages_here else []  # fmt: skip
    sub_cols, sub_consts = model_columns(
        Subscriber, ["openid", "is_following", "subscribed_at", "source_channel_id", "source_scene", *stage_columns]
    )
    int_cols, int_consts = model_columns(
        Interaction,
        ["subscriber_id", "kind", "dedupe_key", "scene", "data", "created_at", "received_at", "processed_at"],
    )
    conv_cols, conv_consts = model_columns(
        Conversion, ["type_id", "subscriber_id", "external_id", "value", "occurred_at", "channel_id"]
    )
    kinds = [k for k, w in SUBSCRIBER_KINDS_SAMPLE + OTHER_KINDS for _ in range(w)]
    from wechat_crm.wechat.dispatch import follow_ups_for

    no_follow_up = {k for k, _w in OTHER_KINDS if not follow_ups_for(k)}  # stored processed, as the callback does

    raw = connection.connection  # psycopg 3
    started = time.monotonic()
    with raw.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # no FK triggers during the load
        saved = _drop_indexes(cur, ["accounts_interaction", "accounts_subscriber"])
        sub_buf, int_buf, conv_buf = io.StringIO(), io.StringIO(), io.StringIO()
        dedupe = 0
        conversions = 0

        def flush(force: bool = False) -> None:
            for table, cols, buf in (
                ("accounts_subscriber", sub_cols, sub_buf),
                ("accounts_interaction", int_cols, int_buf),
                ("campaigns_conversion", conv_cols, conv_buf),
            ):
                if buf.tell() and (force or buf.tell() > 8_000_000):
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                        copy.write(buf.getvalue())
                    buf.seek(0)
                    buf.truncate()

        for sid in range(1, subscribers + 1):
            followed = now - timedelta(seconds=rnd.randrange(365 * 86400))
            channel = channels[rnd.randrange(20)] if rnd.random() < 0.8 else None
            count = max(0, round(rnd.gauss(per_sub - 1, 3)))
            events = []
            for _ in range(count):
                offset = timedelta(seconds=int(rnd.expovariate(1 / (20 * 86400))))
                events.append((followed + offset, kinds[rnd.randrange(len(kinds))]))
            events.sort()
            rows = [(followed, "subscribe", channel.scene_str if channel else "", {})]
            for at, kind in events:
                data: dict = {}
                if kind == "link_click":
                    article = articles[rnd.randrange(50)]
                    push = pushes[rnd.randrange(10)] if rnd.random() < 0.7 else None
                    data = {"push_id": push.pk if push else None, "content_id": article.pk, "engaged": True}
                rows.append((at, kind, "", data))
            converted = None
            if rnd.random() < 0.1:
                converted = followed + timedelta(seconds=int(rnd.expovariate(1 / (25 * 86400))))
                conversions += 1
                conv_buf.write(
                    "\t".join(
                        [
                            str(purchase.pk),
                            str(sid),
                            f"order-{sid}",
                            f"{rnd.randrange(1, 100000) / 100:.2f}",
                            converted.isoformat(),
                            copy_value(channel.pk if channel else None),
                            *conv_consts,
                        ]
                    )
                    + "\n"
                )
            stage_values = _stage_values(followed, rows, converted) if stages_here else []
            sub_buf.write(
                "\t".join(
                    [
                        f"bench-{sid}",
                        "t",
                        followed.isoformat(),
                        copy_value(channel.pk if channel else None),
                        channel.scene_str if channel else "",
                        *stage_values,
                        *sub_consts,
                    ]
                )
                + "\n"
            )
            for at, kind, scene, data in rows:
                dedupe += 1
                iso = at.isoformat()
                processed = iso if kind in no_follow_up or stages_here else None
                int_buf.write(
                    "\t".join(
                        [
                            str(sid),
                            kind,
                            f"b{dedupe}",
                            scene,
                            json.dumps(data),
                            iso,
                            iso,
                            copy_value(processed),
                            *int_consts,
                        ]
                    )
                    + "\n"
                )
            if sid % 20000 == 0:
                flush()
                print(
                    f"  {sid:,} subscribers, {dedupe:,} interactions ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
        flush(force=True)
        cur.execute("SET session_replication_role = DEFAULT")
        print(f"loaded {subscribers:,} subscribers, {dedupe:,} interactions, {conversions:,} conversions", flush=True)
        _restore_indexes(cur, saved)
        for table in ("accounts_subscriber", "accounts_interaction", "campaigns_conversion"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")  # noqa: S608
    raw.commit()
    if stages_here:
        from campaigns.summary import summary_rebuild

        t0 = time.monotonic()
        rows_written = summary_rebuild()
        print(f"stage columns written by the generator; summary rebuilt: {rows_written:,} rows "
              f"in {time.monotonic() - t0:.0f} s", flush=True)  # fmt: skip
    vacuum_analyze()
    print(f"generated in {time.monotonic() - started:.0f} s", flush=True)


def maintain_stages(*, processes: int, batch: int) -> dict:
    """The product's stage maintenance over the backlog the generator left (every interaction pending), then every
    conversion (see the module's docstring). Returns the figures."""
    import multiprocessing

    from django.db import connection, transaction

    from accounts import catch_up
    from campaigns import cells, events, stages, summary
    from campaigns.models import Conversion
    from wechat_crm.wechat.dispatch import FOLLOW_UP_ORDER, follow_ups_for

    stage_follow_ups = [f for f in FOLLOW_UP_ORDER if f in (events.stage_follow, events.stage_advance)]
    shared = multiprocessing.get_context("fork")
    spent = {"refresh": shared.Value("d", 0.0), "follow_ups": shared.Value("d", 0.0)}  # seconds, all processes
    real_refresh = stages.summary_refresh

    def add(name: str, seconds: float) -> None:
        with spent[name].get_lock():
            spent[name].value += seconds

    def timed_refresh(*, subscriber_ids) -> None:  # the product's refresh, timed (its statement and the cells')
        t0 = time.perf_counter()
        real_refresh(subscriber_ids=subscriber_ids)
        add("refresh", time.perf_counter() - t0)

    def run(batch) -> None:  # the funnel's follow-ups of the dispatch table, in its order (as follow_ups_run)
        t0 = time.perf_counter()
        for follow_up in stage_follow_ups:
            mine = [i for i in batch if follow_up in follow_ups_for(i.kind)]
            if mine:
                follow_up(mine)
        add("follow_ups", time.perf_counter() - t0)

    folds = [0, 0.0]  # cells written, seconds
    started = time.monotonic()
    last = {"print": started, "fold": started}

    def fold() -> None:
        t0 = time.perf_counter()
        folds[0] += cells.cells_fold()
        folds[1] += time.perf_counter() - t0

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last["fold"] >= 300:  # the beat folds the cells' additions every 5 minutes (campaigns.cells)
            fold()
            last["fold"] = now
        if now - last["print"] >= 60:
            print(f"  {done:,} interactions through the stage follow-ups ({now - started:.0f} s, "
                  f"{done / (now - started):.0f}/s)", flush=True)  # fmt: skip
            last["print"] = now

    with connection.cursor() as cursor:  # the generator spreads some interactions into the next weeks: all of them
        cursor.execute("SELECT max(received_at) FROM accounts_interaction")
        before = cursor.fetchone()[0] + timedelta(seconds=1)
    stages.summary_refresh = timed_refresh
    cpu0 = os.times()
    result = catch_up.interactions_catch_up(run=run, batch=batch, processes=processes, received_before=before,
                                            progress=progress)  # fmt: skip
    cpu1 = os.times()
    cpu = sum(getattr(cpu1, f) - getattr(cpu0, f) for f in ("user", "system", "children_user", "children_system"))
    interactions = {"done": result.processed, "seconds": result.seconds, "failed": result.failed, "cpu": cpu,
                    "refresh": spent["refresh"].value, "follow_ups": spent["follow_ups"].value}  # fmt: skip
    spent["refresh"].value = 0.0
    conv = [0, 0.0, 0]  # conversions, seconds, batches
    rows = list(Conversion.objects.order_by("occurred_at", "id").values_list("subscriber_id", "occurred_at"))
    for start in range(0, len(rows), 1000):
        first: dict[int, datetime] = {}
        for subscriber_id, at in rows[start : start + 1000]:
            if subscriber_id not in first or at < first[subscriber_id]:
                first[subscriber_id] = at
        t0 = time.perf_counter()
        with transaction.atomic():
            events.stage_convert(first_conversion=first)
        conv[0] += len(rows[start : start + 1000])
        conv[1] += time.perf_counter() - t0
        conv[2] += 1
    conv.append(spent["refresh"].value)
    stages.summary_refresh = real_refresh
    fold()
    t0 = time.perf_counter()
    differences = summary.summary_differences() + cells.cells_differences()
    check_seconds = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM campaigns_funnelstep")
        summary_rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM accounts_interaction WHERE processed_at IS NULL")
        left = cursor.fetchone()[0]
    return {"interactions": interactions, "conversions": conv, "differences": differences, "folds": folds,
            "check_seconds": check_seconds, "summary_rows": summary_rows, "left": left, "processes": processes,
            "batch": batch, "seconds": time.monotonic() - started}  # fmt: skip


def print_maintenance(m: dict) -> None:
    i = m["interactions"]
    print(f"stage maintenance through the product's catch-up (accounts.catch_up.interactions_catch_up, as "
          f"`manage.py interactions_catch_up`: {m['processes']} processes, batches of {m['batch']:,}; the funnel's "
          f"stage follow-ups of the dispatch table):")  # fmt: skip
    print(f"  interactions: {i['done']:,} in {i['seconds']:.0f} s: {i['done'] / i['seconds']:,.0f} interactions/s "
          f"({m['left']:,} left pending, {i['failed']} processes failed); CPU of the bench's processes "
          f"{i['cpu'] / max(i['done'], 1) * 1e6:.0f} us per interaction (PostgreSQL's not included)")  # fmt: skip
    share = i["refresh"] / i["follow_ups"] if i["follow_ups"] else 0.0
    whole = i["refresh"] / (i["seconds"] * m["processes"]) if i["seconds"] else 0.0
    print(f"  the summary's refresh (every call timed: its statement and the cells' triggers): {i['refresh']:.0f} s "
          f"of the follow-ups' {i['follow_ups']:.0f} s ({share:.1%}); {whole:.1%} of the processes' time")  # fmt: skip
    n, seconds, batches, refresh = m["conversions"]
    print(f"  conversions (stage_convert, {batches:,} batches of 1,000): {n / seconds if seconds else 0:,.0f}/s, "
          f"of which the summary's refresh {refresh / seconds if seconds else 0:.1%} of the time")  # fmt: skip
    print(f"  the cells' folds (as the beat, every 5 minutes, and once at the end): {m['folds'][0]:,} cells written in "
          f"{m['folds'][1]:.1f} s")  # fmt: skip
    same = "yes" if not m["differences"] else "NO " + repr(m["differences"][:3])
    print(f"  summary: {m['summary_rows']:,} rows; equal to its rebuild from the stored columns: {same}")
    print(f"  (checked in {m['check_seconds']:.1f} s)")


def _stage_values(followed: datetime, rows: list, converted: datetime | None) -> list[str]:
    """The stage columns campaigns.stages would store for these interactions (--stages-from-generator only)."""
    engaged = engaged_content = engaged_push = None
    times = []
    for at, kind, _scene, data in rows[1:]:
        if kind in ("link_click", "click", "view") and engaged is None:
            engaged, engaged_content, engaged_push = at, data.get("content_id"), data.get("push_id")
        if kind in {k for k, _w in SUBSCRIBER_KINDS_SAMPLE}:
            times.append(at)
    interactive = interactive_at(times)
    stage = "converted" if converted else "interactive" if interactive else "engaged" if engaged else "followed"
    return [copy_value(v) for v in (followed, engaged, interactive, converted, engaged_content, engaged_push)] + [stage]


def vacuum_analyze() -> None:
    """ANALYZE only, no VACUUM: the planner gets the statistics autovacuum would have given it, but no page is made
    all-visible by hand before the timing (a live table has a day of updates since its last VACUUM; autovacuum
    runs as configured, as in production)."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    old = raw.autocommit
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute("ANALYZE accounts_subscriber")
        cur.execute("ANALYZE accounts_interaction")
        cur.execute("ANALYZE campaigns_conversion")
        cur.execute("ANALYZE campaigns_funnelstep")
        cur.execute("ANALYZE campaigns_funnelcell")
    raw.autocommit = old


def day_of_updates() -> int:
    """A day of the callback's writes since the last VACUUM: one subscriber in 30 sends a message (its
    last_interaction_at moves), which clears the all-visible bit of most of the table's pages, as on a live account.
    No VACUUM follows; autovacuum does what it does in production."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_subscriber SET last_interaction_at = now() "
            "WHERE id % 30 = (extract(doy FROM now()))::int % 30"
        )
        return cursor.rowcount


def _drop_indexes(cur, tables: list[str]) -> list[str]:
    """Drop the secondary indexes and unique constraints (recreated after the load); returns the statements."""
    saved = []
    for table in tables:
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'u'",
            [table],
        )
        for name, definition in cur.fetchall():
            saved.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        cur.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND i.indexname NOT LIKE %s",
            [table, "%_pkey"],
        )
        for name, definition in cur.fetchall():
            saved.append(definition)
            cur.execute(f"DROP INDEX {name}")
    return saved


def _restore_indexes(cur, saved: list[str]) -> None:
    started = time.monotonic()
    cur.execute("SET maintenance_work_mem = '256MB'")
    for statement in saved:
        cur.execute(statement)
    print(f"indexes rebuilt in {time.monotonic() - started:.0f} s", flush=True)


HAND_SQL = """
WITH f AS (
    SELECT subscriber_id AS sid, min(created_at) AS f FROM accounts_interaction WHERE kind = 'subscribe' GROUP BY 1
), e AS (
    SELECT subscriber_id AS sid, min(created_at) AS e FROM accounts_interaction
    WHERE kind IN ('link_click', 'click', 'view') GROUP BY 1
), x AS (
    SELECT subscriber_id AS sid, created_at AS t,
           count(*) OVER w AS n,
           min((created_at AT TIME ZONE 'Asia/Shanghai')::date) OVER w AS dmin,
           max((created_at AT TIME ZONE 'Asia/Shanghai')::date) OVER w AS dmax
    FROM accounts_interaction WHERE kind IN ({kinds})
    WINDOW w AS (PARTITION BY subscriber_id ORDER BY created_at RANGE BETWEEN '30 days' PRECEDING AND CURRENT ROW)
), i AS (
    SELECT sid, min(t) AS i FROM x WHERE n >= 3 AND dmin < dmax GROUP BY 1
), c AS (
    SELECT subscriber_id AS sid, min(occurred_at) AS c FROM campaigns_conversion GROUP BY 1
), ch AS (
    SELECT DISTINCT ON (a.subscriber_id) a.subscriber_id AS sid, ch.id AS channel
    FROM accounts_interaction a JOIN campaigns_channel ch ON ch.scene_str = a.scene
    WHERE a.kind = 'subscribe' ORDER BY a.subscriber_id, a.created_at
), steps AS (
    SELECT f.sid, ch.channel, f.f,
           CASE WHEN e.e <= f.f + %(w)s THEN GREATEST(f.f, e.e) END AS e
    FROM f LEFT JOIN e USING (sid) LEFT JOIN ch USING (sid)
    WHERE f.f >= %(lo)s AND f.f < %(hi)s
), steps2 AS (
    SELECT s.*, CASE WHEN s.e IS NOT NULL AND i.i <= s.f + %(w)s THEN GREATEST(s.e, i.i) END AS i
    FROM steps s LEFT JOIN i USING (sid)
), steps3 AS (
    SELECT s.*, CASE WHEN s.i IS NOT NULL AND c.c <= s.f + %(w)s THEN GREATEST(s.i, c.c) END AS c
    FROM steps2 s LEFT JOIN c USING (sid)
)
SELECT {group}, count(*), count(e), count(i), count(c),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e - f)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i - e)),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c - i))
FROM steps3 GROUP BY {grouping}
"""


# The same numbers, written by hand over the same stored columns the report reads (the stage timestamps): a step is
# reached within the window when every step up to it is reached by followed_at + window; its delay counts from the
# latest of the steps before it. Plain GROUP BY, no generated columns, no planner settings.
STORED_SQL = """
WITH s AS (
    SELECT s.followed_at, s.engaged_at, s.interactive_at, s.converted_at, {group} AS grp,
           s.engaged_at <= s.followed_at + %(w)s AS e_ok,
           s.engaged_at <= s.followed_at + %(w)s AND s.interactive_at <= s.followed_at + %(w)s AS i_ok,
           s.engaged_at <= s.followed_at + %(w)s AND s.interactive_at <= s.followed_at + %(w)s
               AND s.converted_at <= s.followed_at + %(w)s AS c_ok
    FROM accounts_subscriber s {join}
    WHERE s.followed_at >= %(lo)s AND s.followed_at < %(hi)s
)
SELECT grp, count(*), count(*) FILTER (WHERE e_ok), count(*) FILTER (WHERE i_ok), count(*) FILTER (WHERE c_ok),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM GREATEST(followed_at, engaged_at) - followed_at))
           FILTER (WHERE e_ok),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM GREATEST(followed_at, engaged_at, interactive_at)
           - GREATEST(followed_at, engaged_at))) FILTER (WHERE i_ok),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM GREATEST(followed_at, engaged_at, interactive_at,
           converted_at) - GREATEST(followed_at, engaged_at, interactive_at))) FILTER (WHERE c_ok)
FROM s GROUP BY grp
"""
STORED_GROUPS = {
    None: ("NULL::text", ""),
    "channel": ("s.source_channel_id::text", ""),
    "content": ("s.engaged_content_id::text", ""),
    "cohort_week": ("to_char(date_trunc('week', s.followed_at AT TIME ZONE 'Asia/Shanghai'), 'YYYY-MM-DD')", ""),
    "campaign": ("cc.campaign_id::text", "JOIN campaigns_campaign_channels cc ON cc.channel_id = s.source_channel_id"),
}


def stored_report(query, breakdown: str | None) -> tuple[float, dict]:
    """Seconds and {group: numbers} of the hand-written SQL over the stored stage columns."""
    from django.db import connection

    lo, hi = query.bounds()
    group, join = STORED_GROUPS[breakdown]
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            STORED_SQL.format(group=group, join=join), {"lo": lo, "hi": hi, "w": timedelta(days=query.window_days)}
        )
        rows = cursor.fetchall()
    return time.monotonic() - started, {row[0]: _numbers(row[1:]) for row in rows}


def hand_report(query) -> tuple[float, dict]:
    from django.db import connection

    from accounts.kinds import SUBSCRIBER_ORIGINATED as SUBSCRIBER_KINDS

    lo, hi = query.bounds()
    kinds = ", ".join(f"'{k}'" for k in SUBSCRIBER_KINDS)
    results = {}
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")
        for key, group, grouping in ((None, "NULL::text", "1"), ("channel", "channel::text", "1")):
            sql = HAND_SQL.format(kinds=kinds, group=group, grouping=grouping)
            cursor.execute(sql, {"lo": lo, "hi": hi, "w": timedelta(days=query.window_days)})
            results[key] = {row[0]: _numbers(row[1:]) for row in cursor.fetchall()}
    return time.monotonic() - started, results


def _numbers(row) -> tuple:
    return tuple(row[:4]) + tuple(None if m is None else round(float(m), 1) for m in row[4:])


def _report_numbers(steps: list[dict]) -> tuple:
    return tuple(s["count"] for s in steps) + tuple(s["median_seconds_from_previous"] for s in steps[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--skip-raw", action="store_true", help="skip the (minutes long) SQL over raw interactions")
    parser.add_argument(
        "--stages-from-generator",
        action="store_true",
        help="write the stage columns in the generator and rebuild the summary (a fast dataset for bench/admin.py; "
        "not the product's stage maintenance)",
    )
    parser.add_argument("--generate-only", action="store_true", help="generate, then stop (--skip-generate goes on)")
    parser.add_argument("--processes", type=int, default=2, help="processes of the product's catch-up")
    parser.add_argument("--batch", type=int, default=2000, help="interactions each claims at a time")
    args = parser.parse_args()

    url = os.environ.get("FUNNEL_BENCH_DATABASE_URL") or DEFAULT_DB
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")  # base settings, not in debug
    sys.path.insert(0, str(ROOT))
    from bench.common import ensure_database

    ensure_database(url)  # with --skip-generate too: the data gets the migrations added since it was generated
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Interaction
    from campaigns import funnel

    maintenance = None
    if not args.skip_generate:
        generate(subscribers=args.subscribers, interactions=args.interactions, seed=args.seed,
                 stages_here=args.stages_from_generator)  # fmt: skip
        if args.generate_only:
            return 0
    if Interaction.objects.filter(processed_at__isnull=True).exists():  # generated, or an interrupted maintenance
        maintenance = maintain_stages(processes=args.processes, batch=args.batch)
        print_maintenance(maintenance)
    vacuum_analyze()  # fresh statistics (a migration may have rewritten a table since); no VACUUM
    day_of_updates()
    today = timezone.localdate()
    query = funnel.funnel_query(start=today - timedelta(days=366), end=today, window_days=30)
    timings = {}
    reports = {}
    for breakdown in (None, *funnel.BREAKDOWNS):
        q = funnel.FunnelQuery(query.start, query.end, query.window_days, breakdown)
        best = None
        for _ in range(3):
            started = time.monotonic()
            reports[breakdown] = funnel.funnel_report(query=q)
            elapsed = time.monotonic() - started
            best = elapsed if best is None else min(best, elapsed)
        timings[breakdown or "none"] = best
    stored = {}
    for breakdown in (None, *funnel.BREAKDOWNS):
        best, numbers = None, {}
        for _ in range(3):
            seconds, numbers = stored_report(query, breakdown)
            best = seconds if best is None else min(best, seconds)
        stored[breakdown] = (best, numbers)
    hand_seconds, hand = hand_report(query) if not args.skip_raw else (None, {})

    def ours(breakdown):
        if breakdown is None:
            return {None: _report_numbers(reports[None]["steps"])}
        return {g["key"]: _report_numbers(g["steps"]) for g in reports[breakdown]["groups"]}

    differ = []
    for breakdown in (None, *funnel.BREAKDOWNS):
        mine, theirs = ours(breakdown), stored[breakdown][1]
        for group in sorted(set(mine) | set(theirs), key=str):
            if mine.get(group) != theirs.get(group):
                differ.append(("stored", breakdown, group, mine.get(group), theirs.get(group)))
        if breakdown in hand:
            for group in sorted(set(mine) | set(hand[breakdown]), key=str):
                if mine.get(group) != hand[breakdown].get(group):
                    differ.append(("raw", breakdown, group, mine.get(group), hand[breakdown].get(group)))
    steps = reports[None]["steps"]
    print("funnel (followers of the last 366 days, 30-day window):")
    for s in steps:
        print(
            f"  {s['step']:<12} {s['count']:>9,}  from previous {s['conversion_from_previous']:.1%}  "
            f"median {s['median_seconds_from_previous'] or 0:>10.0f} s"
        )
    print(
        "tables: no VACUUM before the timing (ANALYZE only), then a day of messages (1 subscriber in 30 updated), "
        "autovacuum as configured; "
        + (
            "stage columns and summary written by the product's stage maintenance (above)"
            if maintenance
            else "stage columns and summary as an earlier run left them (--skip-generate)"
            if args.skip_generate
            else "stage columns written by the GENERATOR (--stages-from-generator), summary rebuilt from them"
        )
    )
    print(f"{'breakdown':<12} {'report ms':>10} {'stored-column SQL ms':>21} {'ratio':>6}  target <= 500 ms")
    for breakdown in (None, *funnel.BREAKDOWNS):
        name, seconds, base = breakdown or "none", timings[breakdown or "none"], stored[breakdown][0]
        flag = "met" if seconds <= 0.5 else "MISSED"
        print(f"{name:<12} {seconds * 1000:10.0f} {base * 1000:21.0f} {seconds / base:6.2f}  {flag}")
    if hand_seconds is not None:
        print(f"hand-written SQL over raw interactions (overall + by channel): {hand_seconds * 1000:8.0f} ms")
    load = os.getloadavg()
    print(f"load average: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if maintenance and maintenance["differences"]:
        print("THE SUMMARY DIFFERS FROM ITS REBUILD")
        return 1
    if maintenance and (maintenance["left"] or maintenance["interactions"]["failed"]):
        print("THE CATCH-UP LEFT INTERACTIONS PENDING")
        return 1
    if differ:
        print("NUMBERS DIFFER:")
        for kind, key, group, a, b in differ[:20]:
            print(f"  {kind} breakdown={key} group={group}: report={a} hand={b}")
        return 1
    checked = "all five breakdowns and the total, group by group, against the stored-column SQL"
    print(f"numbers identical: {checked}{'' if hand_seconds is None else '; overall and by channel against raw'}")
    return 0 if all(t <= 0.5 for t in timings.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
