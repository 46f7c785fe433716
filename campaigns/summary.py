"""The funnel summary: what the funnel reports read (campaigns.funnel), kept current by the stage maintenance.

One narrow row per subscriber and funnel step reached (FunnelStep): the local day of the first follow, the source
channel, the engaging content, the microseconds from the follow to the step (`reach_us`: the step is within a
report's window when it is at most the window) and from the previous step (`delay_us`: what the medians sort).
Counts are sums of rows; the medians are exact because each row keeps its own delay (the reports show them to a tenth
of a second, number by number, so a histogram alone cannot give them).

The cells (campaigns.cells): triggers on the summary count its rows, in the same transaction, by week or by month and
channel or content, step, window class and delay bucket (log scale). A report without a filter whose window is one of
the classes (campaigns.funnel_cells) adds up the cells of the whole periods in its range (the rows of the days at its
edges are counted directly) instead of reading every row, and takes each median in two phases, exactly: the
cumulative counts by bucket tell which bucket holds the middle row(s) of a group and step and their ranks inside it;
only those buckets' rows are read (an index on step and delay) and the middle values picked. Other reports read the
rows in one pass, with the same numbers.

Why not the subscribers' columns themselves: every message updates its subscriber's row (last_interaction_at), so
on a live account most of accounts_subscriber's pages are not all-visible and an index-only scan of it fetches the
table anyway (the reports took 11.8 to 18.8 s at 1M subscribers a day after a VACUUM). The summary is written only
when a step is reached or its key changes: a row is inserted once and rarely updated, so autovacuum's insert
threshold keeps its pages all-visible, and a report reads a third of the bytes.

Maintenance: every statement of campaigns.stages (and the channel attribution) that may change a subscriber's stage
columns, source channel or engaging content is followed, in the same transaction, by `summary_refresh` for the
subscribers it touched: one INSERT ... SELECT ... ON CONFLICT DO UPDATE for the batch that recomputes their rows from
the stored columns and writes only those that differ. Recomputing (rather than adding increments) makes it exactly
once by construction: a retried batch, a batch run twice or a subscriber in two batches writes the same rows.
`summary_rebuild` recomputes everything, cells included (migration, backfill after writes made outside the product
such as a bulk import, and `manage.py funnel_summary --check` to verify both). The cells follow the rows' actual
changes (a refresh that writes nothing adds nothing), so they are exactly once whenever the rows are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Subscriber

from .cells import cells_off, cells_rebuild
from .models import FunnelStep

# A step's microseconds from the follow: the delays up to it (NULL until every step up to it is reached).
_STEPS_SQL = """
    SELECT s.id AS subscriber_id, v.step,
           (s.followed_at AT TIME ZONE %(tz)s)::date AS day,
           COALESCE(s.source_channel_id, 0) AS channel_key,
           COALESCE(s.engaged_content_id, 0) AS content_key,
           v.reach_us, v.delay_us
    FROM accounts_subscriber s
    CROSS JOIN LATERAL (VALUES
        (0, CASE WHEN s.followed_at IS NOT NULL THEN 0::bigint END, 0::bigint),
        (1, s.engaged_delay_us, s.engaged_delay_us),
        (2, s.engaged_delay_us + s.interactive_delay_us, s.interactive_delay_us),
        (3, s.engaged_delay_us + s.interactive_delay_us + s.converted_delay_us, s.converted_delay_us)
    ) AS v(step, reach_us, delay_us)
    WHERE v.reach_us IS NOT NULL {where}
"""
# (No `s.followed_at IS NOT NULL` in the WHERE: it would let the planner pick the partial funnel index over the
# primary key for a batch's ids when its statistics are stale, and scan it: 130 ms instead of 1 ms. Every delay is
# NULL until followed_at is set.)
_COLUMNS = "subscriber_id, step, day, channel_key, content_key, reach_us, delay_us"
# One statement for a batch: the rows recomputed from the columns, upserted where they differ (the unique index finds
# them whatever the statistics). A step once reached stays reached (stage times are never cleared by the product), so
# nothing is deleted here; summary_rebuild drops what a hand edit of the columns may have left.
_REFRESH_SQL = f"""
    INSERT INTO campaigns_funnelstep ({_COLUMNS})
    {_STEPS_SQL.format(where="AND s.id = ANY(%(ids)s::bigint[])")}
    ON CONFLICT (subscriber_id, step) DO UPDATE
    SET day = EXCLUDED.day, channel_key = EXCLUDED.channel_key, content_key = EXCLUDED.content_key,
        reach_us = EXCLUDED.reach_us, delay_us = EXCLUDED.delay_us
    WHERE (campaigns_funnelstep.day, campaigns_funnelstep.channel_key, campaigns_funnelstep.content_key,
           campaigns_funnelstep.reach_us, campaigns_funnelstep.delay_us)
          IS DISTINCT FROM (EXCLUDED.day, EXCLUDED.channel_key, EXCLUDED.content_key, EXCLUDED.reach_us,
                            EXCLUDED.delay_us)
"""  # noqa: S608 (only our own constants)


def _tz() -> str:
    return timezone.get_default_timezone_name()


def summary_refresh(*, subscriber_ids: Iterable[int]) -> None:
    """Recompute the summary rows of these subscribers from their stored columns: on PostgreSQL one statement that
    writes only the rows that changed."""
    ids = sorted({int(pk) for pk in subscriber_ids if pk is not None})
    if not ids:
        return
    if connection.vendor != "postgresql":
        _refresh_portable(ids)
        return
    with connection.cursor() as cursor:
        cursor.execute(_REFRESH_SQL, {"tz": _tz(), "ids": ids})


def _rows_portable(subscribers: Iterable[tuple]) -> list[FunnelStep]:
    rows = []
    for pk, followed_at, channel_id, content_id, *delays in subscribers:
        if followed_at is None:
            continue
        day = timezone.localtime(followed_at, timezone.get_default_timezone()).date()
        reach = 0
        for step, delay in enumerate([0, *delays]):
            if delay is None:
                break
            reach += delay
            rows.append(
                FunnelStep(subscriber_id=pk, step=step, day=day, channel_key=channel_id or 0,
                           content_key=content_id or 0, reach_us=reach, delay_us=delay)
            )  # fmt: skip
    return rows


_FIELDS = ("pk", "followed_at", "source_channel_id", "engaged_content_id", "engaged_delay_us",
           "interactive_delay_us", "converted_delay_us")  # fmt: skip


def _refresh_portable(ids: list[int]) -> None:
    """The embedded default (SQLite): the same rows computed in Python, upserted in one statement."""
    with transaction.atomic():
        rows = _rows_portable(Subscriber.objects.filter(pk__in=ids).values_list(*_FIELDS))
        FunnelStep.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["subscriber", "step"],
            update_fields=["day", "channel_key", "content_key", "reach_us", "delay_us"],
        )


@transaction.atomic
def summary_rebuild(*, cells: bool = True) -> int:
    """Recompute the whole summary from the stored columns, then its cells (in one transaction: reports see the old
    or the new one). Returns the rows written. `cells=False`: the migration that created the summary, before its
    cells existed."""
    if connection.vendor != "postgresql":
        FunnelStep.objects.all().delete()
        written = 0
        pks = list(Subscriber.objects.filter(followed_at__isnull=False).order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(pks), 2000):
            rows = _rows_portable(Subscriber.objects.filter(pk__in=pks[start : start + 2000]).values_list(*_FIELDS))
            FunnelStep.objects.bulk_create(rows)
            written += len(rows)
        return written
    with connection.cursor() as cursor:
        # Writers of the summary wait until the cells are recounted from what this transaction writes.
        cursor.execute("LOCK TABLE campaigns_funnelstep IN SHARE ROW EXCLUSIVE MODE")
        cells_off()
        cursor.execute("DELETE FROM campaigns_funnelstep")
        cursor.execute(f"INSERT INTO campaigns_funnelstep ({_COLUMNS}) {_STEPS_SQL.format(where='')}", {"tz": _tz()})
        written = cursor.rowcount
    cells_off(False)  # (inside an outer transaction, later writes add cells again)
    if cells:
        cells_rebuild()
    return written


def summary_differences(*, limit: int = 20) -> list[tuple[str, Any]]:
    """Rows of the summary that differ from a recomputation from the stored columns: ("missing" | "extra", row).
    Empty when the summary is exact."""
    if connection.vendor != "postgresql":
        stored = set(FunnelStep.objects.values_list(*_COLUMNS.split(", ")))
        wanted = set()
        for row in _rows_portable(Subscriber.objects.filter(followed_at__isnull=False).values_list(*_FIELDS)):
            wanted.add(tuple(getattr(row, f) for f in _COLUMNS.split(", ")))
        diff = [("missing", r) for r in sorted(wanted - stored)] + [("extra", r) for r in sorted(stored - wanted)]
        return diff[:limit]
    steps = _STEPS_SQL.format(where="")
    stored = f"SELECT {_COLUMNS} FROM campaigns_funnelstep"  # noqa: S608 (only our own constants)
    sql = (
        f"(SELECT 'missing', * FROM ({steps} EXCEPT {stored}) m LIMIT %(n)s) "  # noqa: S608 (our constants)
        f"UNION ALL (SELECT 'extra', * FROM ({stored} EXCEPT {steps}) x LIMIT %(n)s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"tz": _tz(), "n": limit})
        return [(row[0], row[1:]) for row in cursor.fetchall()]


def summary_key_removed(*, channel_id: int | None = None, content_id: int | None = None) -> int:
    """A deleted channel or article: the subscribers' columns were set to NULL by the database; so is the key here."""
    if channel_id is not None:
        return FunnelStep.objects.filter(channel_key=channel_id).update(channel_key=0)
    if content_id is not None:
        return FunnelStep.objects.filter(content_key=content_id).update(content_key=0)
    return 0
