"""The funnel summary's cells: counts of campaigns_funnelstep's rows that the reports add up (campaigns.funnel_cells).

A cell counts the summary rows of one (kind, period, group, step, window class, delay bucket):
- kind WEEK: period = the Monday of the follow's local day, no group (the report without a breakdown, cohort weeks);
  kinds CHANNEL and CONTENT: period = the first of the follow's month, group = channel_key or content_key; kinds
  CHANNEL_QUARTER and CONTENT_QUARTER the same by quarter (a year's report adds up 3 quarters and a few months
  instead of 12 months: a cell of a quarter holds about as many distinct buckets as one of a month);
- window class: the smallest of WINDOW_DAYS the row is reached within (`reach_us`), len(WINDOW_DAYS) beyond them:
  a report's window W in WINDOW_DAYS takes the classes up to W's;
- delay bucket: where `delay_us` falls among DELAY_EDGES (log scale, 5% wide from a second up; 0 is a bucket of its
  own), the same in SQL (width_bucket) and Python (bisect_right).

Maintenance: statement triggers on campaigns_funnelstep (INSERT, UPDATE, DELETE, with their transition tables)
insert the cells' additions (+1 per new row, -1 per old one) computed from the rows the statement changed, in the
same transaction: whatever writes the summary (summary_refresh, summary_rebuild, a deleted channel, a cascade), the
cells move with it, exactly once because they follow the rows' actual changes (a refresh that writes nothing adds
nothing). Additions are only inserted, never updated, so that workers following the same week and channel never wait
for one row's lock (as campaigns.tallies); the beat folds them into one row per cell (`cells_fold`).
`cells_rebuild` recounts them from the summary; `cells_differences` compares (`manage.py funnel_summary --check`).

Changing WINDOW_DAYS, DELAY_EDGES or the periods needs a migration that recreates the trigger function
(TRIGGER_SQL) and calls cells_rebuild.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction

WEEK, CHANNEL, CONTENT, CHANNEL_QUARTER, CONTENT_QUARTER = 0, 1, 2, 3, 4
WINDOW_DAYS = (1, 3, 7, 14, 30, 60, 90)
DAY_US = 86_400_000_000


def _delay_edges() -> tuple[int, ...]:
    """0, 1 µs, then from 1 s up by 5% (integer steps: the same on every machine) past ten years."""
    edges = [0, 1, 1_000_000]
    while edges[-1] <= 3660 * DAY_US:
        edges.append(edges[-1] + max(1, edges[-1] // 20))
    return tuple(edges)


DELAY_EDGES = _delay_edges()
_WINDOW_US = "ARRAY[" + ", ".join(str(d * DAY_US) for d in WINDOW_DAYS) + "]::bigint[]"
_EDGES = "ARRAY[" + ", ".join(map(str, DELAY_EDGES)) + "]::bigint[]"

# The cells of a set of summary rows `r` (with a `sign`): one row per cell they add to.
_CELLS_OF = f"""
    SELECT k.kind, k.period, k.grp, r.step, width_bucket(r.reach_us - 1, {_WINDOW_US}) AS wclass,
           width_bucket(r.delay_us, {_EDGES}) AS bucket, sum(r.sign) AS n
    FROM ({{rows}}) r
    CROSS JOIN LATERAL (VALUES
        ({WEEK}, r.day - (extract(isodow FROM r.day)::int - 1), 0::bigint),
        ({CHANNEL}, date_trunc('month', r.day::timestamp)::date, r.channel_key),
        ({CONTENT}, date_trunc('month', r.day::timestamp)::date, r.content_key),
        ({CHANNEL_QUARTER}, date_trunc('quarter', r.day::timestamp)::date, r.channel_key),
        ({CONTENT_QUARTER}, date_trunc('quarter', r.day::timestamp)::date, r.content_key)
    ) AS k(kind, period, grp)
    GROUP BY 1, 2, 3, 4, 5, 6
"""  # noqa: S608 (only our own constants)
_ROW = "day, channel_key, content_key, step, reach_us, delay_us"
_CELL_COLUMNS = "kind, period, grp, step, wclass, bucket"
_ADD = f"""
        INSERT INTO campaigns_funnelcell ({_CELL_COLUMNS}, n, folded)
        SELECT c.*, false FROM ({_CELLS_OF}) c WHERE c.n <> 0 ORDER BY 1, 2, 3, 4, 5, 6;"""  # noqa: S608
_OFF = "wcrm.funnel_cells_off"  # set locally by summary_rebuild, which recounts the cells itself

_NEW = f"SELECT {_ROW}, 1 AS sign FROM new_rows"  # noqa: S608 (transition tables)
_OLD = f"SELECT {_ROW}, -1 AS sign FROM old_rows"  # noqa: S608 (transition tables)
TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION campaigns_funnelcell_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('{_OFF}', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN{_ADD.format(rows=_NEW)}
    ELSIF TG_OP = 'DELETE' THEN{_ADD.format(rows=_OLD)}
    ELSE{_ADD.format(rows=_NEW + " UNION ALL " + _OLD)}
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION campaigns_funnelcell_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaigns_funnelcell;
    RETURN NULL;
END $$;
CREATE TRIGGER funnelstep_cells_insert AFTER INSERT ON campaigns_funnelstep
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_funnelcell_add();
CREATE TRIGGER funnelstep_cells_update AFTER UPDATE ON campaigns_funnelstep
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_funnelcell_add();
CREATE TRIGGER funnelstep_cells_delete AFTER DELETE ON campaigns_funnelstep
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_funnelcell_add();
CREATE TRIGGER funnelstep_cells_truncate AFTER TRUNCATE ON campaigns_funnelstep
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_funnelcell_clear();
"""  # noqa: S608 (only our own constants)
DROP_TRIGGER_SQL = """
DROP TRIGGER IF EXISTS funnelstep_cells_insert ON campaigns_funnelstep;
DROP TRIGGER IF EXISTS funnelstep_cells_update ON campaigns_funnelstep;
DROP TRIGGER IF EXISTS funnelstep_cells_delete ON campaigns_funnelstep;
DROP TRIGGER IF EXISTS funnelstep_cells_truncate ON campaigns_funnelstep;
DROP FUNCTION IF EXISTS campaigns_funnelcell_add();
DROP FUNCTION IF EXISTS campaigns_funnelcell_clear();
"""

_FOLD_SQL = f"""
    WITH gone AS (DELETE FROM campaigns_funnelcell WHERE NOT folded RETURNING {_CELL_COLUMNS}, n)
    INSERT INTO campaigns_funnelcell ({_CELL_COLUMNS}, n, folded)
    SELECT {_CELL_COLUMNS}, sum(n), true FROM gone GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT ({_CELL_COLUMNS}) WHERE folded DO UPDATE SET n = campaigns_funnelcell.n + EXCLUDED.n
"""  # noqa: S608 (only our own constants)
_RECOUNT = _CELLS_OF.format(rows=f"SELECT {_ROW}, 1 AS sign FROM campaigns_funnelstep")  # noqa: S608


def cells_off(off: bool = True) -> None:
    """Until cells_off(False) or the end of the transaction, the summary's writes add no cells (summary_rebuild, which
    then calls cells_rebuild)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [_OFF, "on" if off else "off"])


def cells_fold() -> int:
    """Fold the additions into one row per cell (the beat, every few minutes; one fold at a time). Returns the cells
    written."""
    if connection.vendor != "postgresql":
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext('campaigns_funnelcell_fold'))")
        if not cursor.fetchone()[0]:
            return 0
        cursor.execute(_FOLD_SQL)
        return cursor.rowcount


def cells_rebuild() -> int:
    """Recount every cell from the summary (inside summary_rebuild's transaction, which holds the summary's lock).
    Returns the cells written."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_funnelcell")
        cursor.execute(
            f"INSERT INTO campaigns_funnelcell ({_CELL_COLUMNS}, n, folded) "  # noqa: S608 (our constants)
            f"SELECT *, true FROM ({_RECOUNT}) c ORDER BY 1, 2, 3, 4, 5, 6"
        )
        return cursor.rowcount


def cells_differences(*, limit: int = 20) -> list[tuple[str, Any]]:
    """Cells whose sum differs from a recount of the summary: ("cell", (kind, period, group, step, window class,
    bucket, stored, recounted)). Empty when they are exact."""
    if connection.vendor != "postgresql":
        return []
    sql = f"""
        SELECT {_CELL_COLUMNS}, coalesce(s.n, 0), coalesce(r.n, 0)
        FROM (SELECT {_CELL_COLUMNS}, sum(n) AS n FROM campaigns_funnelcell GROUP BY 1, 2, 3, 4, 5, 6) s
        FULL JOIN ({_RECOUNT}) r USING ({_CELL_COLUMNS})
        WHERE coalesce(s.n, 0) <> coalesce(r.n, 0)
        ORDER BY 1, 2, 3, 4, 5, 6 LIMIT %s
    """  # noqa: S608 (only our own constants)
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [("cell", row) for row in cursor.fetchall()]
