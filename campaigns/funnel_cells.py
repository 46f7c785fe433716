"""The funnel report from the summary's cells (campaigns.cells): the same rows as campaigns.funnel's single pass over
the summary, number by number, without sorting every delay.

1. Counts: the cells of the whole weeks (no breakdown, cohort weeks) or quarters and months (channel, campaign,
   content) inside the range, plus the summary's rows of the days at its edges (outside a whole period), counted by
   group, step and delay bucket, for the steps reached within the window (window classes up to the report's window).
2. Exact medians (percentile_cont(0.5) over float8, as PostgreSQL computes it): for each group and step, the
   cumulative counts by bucket give the bucket of its lower and upper middle rows and their ranks inside it; only
   those buckets' rows are read (the index on step and delay), and the middle values are picked among the group's.
   The median is the lower middle plus half the gap to the upper one (the same float arithmetic).

A campaign's group adds up its channels' cells and rows (a channel in several campaigns counts in each). Reports
with a filter (channel, campaign, tag) or a window outside cells.WINDOW_DAYS are left to the single pass.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db import connections, transaction

from wechat_crm.db import reports_alias

from .cells import CHANNEL, CHANNEL_QUARTER, CONTENT, CONTENT_QUARTER, DAY_US, DELAY_EDGES, WEEK, WINDOW_DAYS

_KIND = {None: WEEK, "cohort_week": WEEK, "channel": CHANNEL, "campaign": CHANNEL, "content": CONTENT}
_QUARTER = {CHANNEL: CHANNEL_QUARTER, CONTENT: CONTENT_QUARTER}
# A row's group: 0 for none, the week's number from the first Monday, a channel or an article (0 for none).
_CELL_GROUP = {None: "0", "cohort_week": "(period - %(monday)s::date) / 7"}
_ROW_GROUP = {None: "0", "cohort_week": "(f.day - %(monday)s::date) / 7", "channel": "f.channel_key",
              "campaign": "f.channel_key", "content": "f.content_key"}  # fmt: skip
_MIN, _MAX = -(2**63), 2**63 - 1

COUNTS_SQL = """
SELECT {cell_group}, step, bucket, sum(n)::bigint FROM campaigns_funnelcell
WHERE ({periods}) AND wclass <= %(wclass)s
GROUP BY 1, 2, 3
"""
EDGE_SQL = """
SELECT {row_group}, f.step, width_bucket(f.delay_us, %(edges)s::bigint[]), count(*)
FROM campaigns_funnelstep f
WHERE ({days}) AND (f.step = 0 OR f.reach_us <= %(window_us)s)
GROUP BY 1, 2, 3
"""
# The rows of the buckets holding a median: one index range scan on (step, delay_us) per bucket (OFFSET 0 keeps the
# subquery a parameterized scan instead of a join over the whole summary), planned once.
BUCKET_SQL = """
SELECT r.i, {row_group}, f.delay_us
FROM unnest(%(steps)s::int[], %(los)s::bigint[], %(his)s::bigint[]) WITH ORDINALITY AS r(step, lo, hi, i)
CROSS JOIN LATERAL (
    SELECT f.day, f.channel_key, f.content_key, f.delay_us FROM campaigns_funnelstep f
    WHERE f.step = r.step AND f.delay_us >= r.lo AND f.delay_us <= r.hi
      AND f.day >= %(start)s AND f.day <= %(end)s AND f.reach_us <= %(window_us)s
    OFFSET 0
) f
"""


# A group's rows of a bucket, through the index that leads with the step and the group's column (not the bucket's
# rows of every group).
_GROUP_ROWS = {
    "channel": "f.channel_key = r.grp",
    "campaign": "f.channel_key = r.grp",
    "content": "f.content_key = r.grp",
    "cohort_week": "f.day >= %(monday)s::date + 7 * r.grp::int AND f.day < %(monday)s::date + 7 * r.grp::int + 7",
}
GROUP_BUCKET_SQL = """
SELECT r.step, r.bucket, r.grp, f.delay_us
FROM unnest(%(gsteps)s::int[], %(gbuckets)s::int[], %(glos)s::bigint[], %(ghis)s::bigint[], %(ggrps)s::bigint[])
     AS r(step, bucket, lo, hi, grp)
CROSS JOIN LATERAL (
    SELECT f.delay_us FROM campaigns_funnelstep f
    WHERE f.step = r.step AND {group_rows} AND f.delay_us >= r.lo AND f.delay_us <= r.hi
      AND f.day >= %(start)s AND f.day <= %(end)s AND f.reach_us <= %(window_us)s
    OFFSET 0
) f
"""


def cells_answer(query: Any) -> bool:
    """Whether the cells hold this report's numbers."""
    no_filter = query.channel_id is None and query.campaign_id is None and query.tag is None
    return no_filter and query.window_days in WINDOW_DAYS


def _whole_periods(kind: int, start: date, end: date) -> tuple[date, date] | None:
    """The first and last start of a whole week or month inside [start, end], None if there is none."""
    if kind == WEEK:
        first = start + timedelta(days=-start.weekday() % 7)
        last = end - timedelta(days=(end.weekday() + 1) % 7) - timedelta(days=6)
    else:
        first = start if start.day == 1 else _next_month(start)
        last = end.replace(day=1)
        if _next_month(end) - timedelta(days=1) != end:  # the month of `end` is not whole
            last = (last - timedelta(days=1)).replace(day=1)
    return (first, last) if first <= last else None


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _period_end(kind: int, first: date) -> date:
    return first + timedelta(days=6) if kind == WEEK else _next_month(first) - timedelta(days=1)


def _segments(kind: int, first: date, last: date) -> list[tuple[int, date, date]]:
    """The whole months first..last as runs of cells: (kind, first period, last period), quarters where whole."""
    if kind not in _QUARTER:
        return [(kind, first, last)]
    q0 = first
    while (q0.month - 1) % 3:
        q0 = _next_month(q0)
    q1 = last
    while q1.month % 3:  # the last month of a quarter
        q1 = (q1 - timedelta(days=1)).replace(day=1)
    q1 = q1.replace(month=q1.month - 2)  # that quarter's first month
    if q1 < q0 or q1 < first:
        return [(kind, first, last)]
    out = [(_QUARTER[kind], q0, q1)]
    if first < q0:
        out.append((kind, first, (q0 - timedelta(days=1)).replace(day=1)))
    after = _next_month(_next_month(_next_month(q1)))
    if after <= last:
        out.append((kind, after, last))
    return out


def _bounds(bucket: int) -> tuple[int, int]:
    """The delays (inclusive) of a bucket: [DELAY_EDGES[b - 1], DELAY_EDGES[b] - 1]."""
    lo = DELAY_EDGES[bucket - 1] if bucket else _MIN
    hi = DELAY_EDGES[bucket] - 1 if bucket < len(DELAY_EDGES) else _MAX
    return lo, hi


def cells_report_rows(query: Any, monday: date, campaigns_of: dict[int, list[int]]) -> tuple[list, list]:
    """(overall rows, group rows), as campaigns.funnel's: (group, is_total, 4 counts, 3 medians in microseconds).
    `campaigns_of`: the campaigns of each channel (campaign breakdown)."""
    breakdown = query.breakdown
    kind = _KIND[breakdown]
    window_us = query.window_days * DAY_US
    params: dict[str, Any] = {
        "wclass": WINDOW_DAYS.index(query.window_days), "window_us": window_us, "monday": monday,
        "edges": list(DELAY_EDGES), "start": query.start, "end": query.end,
    }  # fmt: skip
    row_group = _ROW_GROUP[breakdown]
    parts, edges = [], []
    whole = _whole_periods(kind, query.start, query.end)
    if whole:
        periods = []
        for i, (cells_kind, first, last) in enumerate(_segments(kind, *whole)):
            params[f"k{i}"], params[f"p{i}"], params[f"q{i}"] = cells_kind, first, last
            periods.append(f"(kind = %(k{i})s AND period >= %(p{i})s AND period <= %(q{i})s)")
        parts.append(COUNTS_SQL.format(cell_group=_CELL_GROUP.get(breakdown, "grp"), periods=" OR ".join(periods)))
        if query.start < whole[0]:
            edges.append((query.start, whole[0] - timedelta(days=1)))
        if _period_end(kind, whole[1]) < query.end:
            edges.append((_period_end(kind, whole[1]) + timedelta(days=1), query.end))
    else:
        edges.append((query.start, query.end))
    if edges:
        days = []
        for i, (lo, hi) in enumerate(edges):
            params[f"d{i}"], params[f"e{i}"] = lo, hi
            days.append(f"(f.day >= %(d{i})s AND f.day <= %(e{i})s)")
        parts.append(EDGE_SQL.format(row_group=row_group, days=" OR ".join(days)))
    alias = reports_alias()
    # hist[raw group][step][bucket] = rows
    hist: dict[int, list[dict[int, int]]] = defaultdict(lambda: [defaultdict(int) for _ in range(4)])
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # (JIT only adds start-up time; the cells are hashed in memory)
        cursor.execute("SET LOCAL work_mem = '64MB'")
        # Dozens of small index scans: parallel workers would only add their start-up time.
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cursor.execute(" UNION ALL ".join(parts), params)
        for grp, step, bucket, n in cursor.fetchall():
            if n:
                hist[grp][step][bucket] += n
        plans, needed = _plan(_groups(breakdown, hist, monday, campaigns_of))
        values = _bucket_values(cursor, needed, breakdown, params)
    rows = [_row(plan, values) for plan in plans]
    return [r for r in rows if r[1]], [r for r in rows if not r[1]]


def _groups(breakdown: str | None, hist: dict, monday: date, campaigns_of: dict[int, list[int]]) -> list[tuple]:
    """(key, [(raw group, its hist)], is_total) of the total and each group with rows."""
    members = list(hist.items())
    out: list[tuple] = [(None, members, 1)] if members else []
    if breakdown is None:
        return out
    if breakdown == "campaign":
        by_campaign: dict[int, list] = defaultdict(list)
        for grp, h in members:
            for campaign_id in campaigns_of.get(grp, ()):
                by_campaign[campaign_id].append((grp, h))
        return out + [(str(c), m, 0) for c, m in by_campaign.items()]
    for grp, h in members:
        if breakdown == "cohort_week":
            key = (monday + timedelta(days=7 * grp)).strftime("%Y-%m-%d")
        else:
            key = str(grp) if grp else None
        out.append((key, [(grp, h)], 0))
    return out


def _merged(members: list[tuple[int, list[dict[int, int]]]], step: int) -> dict[int, int]:
    if len(members) == 1:
        return members[0][1][step]
    merged: dict[int, int] = defaultdict(int)
    for _grp, h in members:
        for bucket, n in h[step].items():
            merged[bucket] += n
    return merged


def _middles(by_bucket: dict[int, int]) -> tuple[int, list[tuple[int, int]]]:
    """The count, and the (bucket, rank inside it) of the lower and upper middle rows."""
    count = sum(by_bucket.values())
    if not count:
        return 0, []
    lower, upper = (count - 1) // 2, count // 2
    out, below = [], 0
    for bucket in sorted(by_bucket):
        n = by_bucket[bucket]
        if below + n > lower:
            out.append((bucket, lower - below))
            if upper == lower:
                break
            if below + n > upper:
                out.append((bucket, upper - below))
                break
            lower = upper  # the upper middle is in a later bucket
        below += n
    return count, out


def _plan(groups: list[tuple]) -> tuple[list, dict]:
    """Each group's counts and middles by step, and the groups whose rows each (step, bucket) must give."""
    plans, needed = [], defaultdict(set)
    for key, members, is_total in groups:
        steps = []
        for step in range(4):
            count, middles = _middles(_merged(members, step))
            steps.append((count, middles))
            for bucket, _rank in middles if step else ():
                lo, hi = _bounds(bucket)
                if lo != hi:  # a bucket of one value (0 s) needs no read
                    needed[(step, bucket)].update([None] if is_total else [grp for grp, _h in members])
        plans.append((key, members, is_total, steps))
    return plans, needed


def _bucket_values(cursor: Any, needed: dict, breakdown: str | None, params: dict) -> dict[tuple[int, int], dict]:
    """{(step, bucket): {raw group: [delays]}} of the buckets holding a median: every row of the total's buckets,
    a group's own rows of the others; in two statements."""
    out: dict[tuple[int, int], dict[int, list[int]]] = {key: defaultdict(list) for key in needed}
    everyone = sorted(key for key in needed if None in needed[key])
    if everyone:
        params["steps"] = [step for step, _bucket in everyone]
        bounds = [_bounds(bucket) for _step, bucket in everyone]
        params["los"], params["his"] = [lo for lo, _hi in bounds], [hi for _lo, hi in bounds]
        cursor.execute(BUCKET_SQL.format(row_group=_ROW_GROUP[breakdown]), params)
        for i, grp, delay in cursor.fetchall():
            out[everyone[i - 1]][grp].append(delay)
    some = sorted((key, grp) for key in needed if None not in needed[key] for grp in needed[key])
    if some:
        params["gsteps"] = [step for (step, _b), _g in some]
        params["gbuckets"] = [bucket for (_s, bucket), _g in some]
        params["glos"] = [_bounds(bucket)[0] for (_s, bucket), _g in some]
        params["ghis"] = [_bounds(bucket)[1] for (_s, bucket), _g in some]
        params["ggrps"] = [grp for _key, grp in some]
        cursor.execute(GROUP_BUCKET_SQL.format(group_rows=_GROUP_ROWS[breakdown]), params)
        for step, bucket, grp, delay in cursor.fetchall():
            out[(step, bucket)][grp].append(delay)
    return out


def _row(plan: tuple, values: dict) -> tuple:
    key, members, is_total, steps = plan
    medians = []
    for step, (count, middles) in enumerate(steps[1:], start=1):
        picked = []
        for bucket, rank in middles:
            lo, hi = _bounds(bucket)
            if lo == hi:
                picked.append(lo)
                continue
            found = values[(step, bucket)]
            inside = sorted(v for grp, _h in members for v in found.get(grp, ()))
            picked.append(inside[rank])
        if not picked:
            medians.append(None)
        else:
            low, high = float(picked[0]), float(picked[-1])
            medians.append(low + (high - low) * 0.5 if count % 2 == 0 else low)
    return (key, is_total, *(count for count, _m in steps), *medians)


def campaigns_by_channel(alias: str) -> dict[int, list[int]]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT channel_id, campaign_id FROM campaigns_campaign_channels ORDER BY 1, 2")
        out: dict[int, list[int]] = defaultdict(list)
        for channel_id, campaign_id in cursor.fetchall():
            out[channel_id].append(campaign_id)
        return out


def bisect_bucket(delay: int) -> int:
    """A delay's bucket, as width_bucket computes it in SQL."""
    return bisect_right(DELAY_EDGES, delay)
