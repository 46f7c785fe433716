"""The funnel report as it was computed before the summary (campaigns.summary): one pass over the subscribers' stage
columns on PostgreSQL. Kept as the reference the summary-based report must equal, number by number."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from campaigns import funnel

_GROUP_SQL = {
    None: ("NULL::integer", ""),
    "channel": ("s.source_channel_id", ""),
    "content": ("s.engaged_content_id", ""),
    "cohort_week": ("width_bucket(s.followed_at, %(weeks)s::timestamptz[])", ""),
    "campaign": ("cc.campaign_id", "JOIN campaigns_campaign_channels cc ON cc.channel_id = s.source_channel_id"),
}
REPORT_SQL = """
SELECT {group} AS grp, 0, count(*),
       count(*) FILTER (WHERE s.engaged_delay_us <= %(window_us)s),
       count(*) FILTER (WHERE s.engaged_delay_us + s.interactive_delay_us <= %(window_us)s),
       count(*) FILTER (WHERE s.engaged_delay_us + s.interactive_delay_us + s.converted_delay_us <= %(window_us)s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.engaged_delay_us::float8)
           FILTER (WHERE s.engaged_delay_us <= %(window_us)s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.interactive_delay_us::float8)
           FILTER (WHERE s.engaged_delay_us + s.interactive_delay_us <= %(window_us)s),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY s.converted_delay_us::float8)
           FILTER (WHERE s.engaged_delay_us + s.interactive_delay_us + s.converted_delay_us <= %(window_us)s)
FROM accounts_subscriber s {join}
WHERE {where}
GROUP BY 1
"""


def _week_starts(q: funnel.FunnelQuery) -> list[datetime]:
    tz = timezone.get_current_timezone()
    monday = q.start - timedelta(days=q.start.weekday())
    weeks = []
    while monday <= q.end:
        weeks.append(datetime.combine(monday, time.min, tzinfo=tz))
        monday += timedelta(days=7)
    return weeks


def _rows(q: funnel.FunnelQuery, breakdown: str | None) -> list:
    lo, hi = q.bounds()
    where = ["s.followed_at >= %(lo)s", "s.followed_at < %(hi)s"]
    params: dict[str, Any] = {"lo": lo, "hi": hi, "window_us": q.window_days * 86_400_000_000}
    weeks = _week_starts(q)
    params["weeks"] = weeks
    if q.channel_id is not None:
        where.append("s.source_channel_id = %(channel)s")
        params["channel"] = q.channel_id
    if q.campaign_id is not None:
        where.append(
            "s.source_channel_id IN "
            "(SELECT channel_id FROM campaigns_campaign_channels WHERE campaign_id = %(campaign)s)"
        )
        params["campaign"] = q.campaign_id
    if q.tag is not None:
        where.append(
            "EXISTS (SELECT 1 FROM accounts_subscriber_tags st JOIN accounts_tag t ON t.id = st.tag_id "
            "WHERE st.subscriber_id = s.id AND t.name = %(tag)s)"
        )
        params["tag"] = q.tag
    group, join = _GROUP_SQL[breakdown]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(REPORT_SQL.format(group=group, join=join, where=" AND ".join(where)), params)
        rows = cursor.fetchall()
    if breakdown == "cohort_week":
        return [(None if r[0] is None else weeks[r[0] - 1].strftime("%Y-%m-%d"), *r[1:]) for r in rows]
    return [(None if r[0] is None else str(r[0]), *r[1:]) for r in rows]


def report_from_columns(*, query: funnel.FunnelQuery) -> dict[str, Any]:
    """funnel.funnel_report's result, computed from the subscribers' stage columns (PostgreSQL)."""
    overall = [(None, 1, *row[2:]) for row in _rows(query, None)]
    grouped = _rows(query, query.breakdown) if query.breakdown else []
    return funnel.report_from_rows(query, overall, grouped)
