"""Funnel selectors: the report by step (optionally broken down), the drop-off lists and the attribution tables.

They read the subscribers' stage columns (kept current by campaigns.stages), through the covering index
subscriber_funnel_idx, never the interactions. A step counts for a subscriber who followed in [start, end] and
reached it and every earlier step within `window_days` after the first follow; the moment a step is reached is the
latest of its own time and the previous step's (so times from the previous step are never negative).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Subscriber
from content.models import Article
from wechat_crm.db import reads_reports, reports_alias
from wechat_crm.exceptions import ApplicationError

from .funnel_cells import campaigns_by_channel, cells_answer, cells_report_rows
from .models import Campaign, Channel, FunnelStep
from .stages import ORDER, STAGE_FIELDS, funnel_settings

BREAKDOWNS = ("channel", "campaign", "content", "cohort_week")
STEP_LABELS = {
    "followed": _("Followed"),
    "engaged": _("Engaged"),
    "interactive": _("Interactive"),
    "converted": _("Converted"),
}


@dataclass(frozen=True)
class FunnelQuery:
    start: date
    end: date
    window_days: int
    breakdown: str | None = None
    channel_id: int | None = None
    campaign_id: int | None = None
    tag: str | None = None

    def bounds(self) -> tuple[datetime, datetime]:
        tz = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, tzinfo=tz),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz),
        )


def funnel_query(
    *,
    start: date | None,
    end: date | None,
    window_days: int | None,
    breakdown: str | None = None,
    channel_id: int | None = None,
    campaign_id: int | None = None,
    tag: str | None = None,
) -> FunnelQuery:
    """Checked parameters with defaults: the last 30 days, the settings' conversion window."""
    today = timezone.localdate()
    end = end or today
    start = start or end - timedelta(days=29)
    if start > end:
        raise ApplicationError(_("`from` must not be after `to`."))
    if window_days is None:
        window_days = funnel_settings().default_window_days
    if not 1 <= window_days <= 3650:
        raise ApplicationError(_("`window_days` must be between 1 and 3650."))
    if breakdown and breakdown not in BREAKDOWNS:
        raise ApplicationError(_("`breakdown` must be one of: %s.") % ", ".join(BREAKDOWNS))
    return FunnelQuery(start, end, window_days, breakdown or None, channel_id, campaign_id, tag or None)


# --- The report -----------------------------------------------------------------------------------------------


def _filters(q: FunnelQuery) -> tuple[str, dict[str, Any]]:
    where = ["f.day >= %(start)s", "f.day <= %(end)s", "(f.step = 0 OR f.reach_us <= %(window_us)s)"]
    params: dict[str, Any] = {"start": q.start, "end": q.end, "window_us": q.window_days * 86_400_000_000}
    if q.breakdown == "cohort_week":
        params["monday"] = _first_monday(q)
    if q.channel_id is not None:
        where.append("f.channel_key = %(channel)s")
        params["channel"] = q.channel_id
    if q.campaign_id is not None:
        where.append(
            "f.channel_key IN (SELECT channel_id FROM campaigns_campaign_channels WHERE campaign_id = %(campaign)s)"
        )
        params["campaign"] = q.campaign_id
    if q.tag is not None:
        where.append(
            "EXISTS (SELECT 1 FROM accounts_subscriber_tags st JOIN accounts_tag t ON t.id = st.tag_id "
            "WHERE st.subscriber_id = f.subscriber_id AND t.name = %(tag)s)"
        )
        params["tag"] = q.tag
    return " AND ".join(where), params


# Group keys as integers (grouping sorts them; integers sort faster than text).
_GROUP_SQL = {
    None: ("NULL::bigint", ""),
    "channel": ("NULLIF(f.channel_key, 0)", ""),
    "content": ("NULLIF(f.content_key, 0)", ""),
    "cohort_week": ("((f.day - %(monday)s::date) / 7)", ""),  # the week's number from the first local Monday
    "campaign": ("cc.campaign_id", "JOIN campaigns_campaign_channels cc ON cc.channel_id = f.channel_key"),
}
# When no channel is in two campaigns, a LEFT JOIN cannot duplicate a subscriber: the total comes from the same pass
# and the subscribers of no campaign (group NULL) are left out of the groups.
_CAMPAIGN_PARTITION = (
    "cc.campaign_id",
    "LEFT JOIN campaigns_campaign_channels cc ON cc.channel_id = f.channel_key",
)

# The summary (campaigns.summary): a row per subscriber and step reached; a step counts when it was reached at most
# the window after the follow (`reach_us`, the delays up to it added up: the same as each stage's time <= followed_at
# + window), and its median sorts its own delay from the previous step. The medians come back in microseconds
# (exact: the mean of two integers below 2**53).
REPORT_SQL = """
SELECT {group} AS grp, {total} AS is_total,
       count(*) FILTER (WHERE f.step = 0),
       count(*) FILTER (WHERE f.step = 1),
       count(*) FILTER (WHERE f.step = 2),
       count(*) FILTER (WHERE f.step = 3),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY f.delay_us::float8) FILTER (WHERE f.step = 1),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY f.delay_us::float8) FILTER (WHERE f.step = 2),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY f.delay_us::float8) FILTER (WHERE f.step = 3)
FROM campaigns_funnelstep f {join}
WHERE {where}
GROUP BY {grouping}
"""


def _steps(counts: list[int], medians: list[float | None]) -> list[dict[str, Any]]:
    """`medians` in microseconds."""
    steps = []
    first = counts[0]
    for index, stage in enumerate(ORDER):
        count = counts[index]
        previous = counts[index - 1] if index else count
        steps.append(
            {
                "step": str(stage),
                "label": str(STEP_LABELS[stage]),
                "count": count,
                "conversion_from_previous": round(count / previous, 4) if previous else 0.0,
                "conversion_from_first": round(count / first, 4) if first else 0.0,
                "median_seconds_from_previous": (
                    None if index == 0 or medians[index - 1] is None else round(medians[index - 1] / 1_000_000, 1)
                ),
                "dropoff": count - counts[index + 1] if index + 1 < len(ORDER) else None,
            }
        )
    return steps


# Breakdowns where every subscriber is in exactly one group: the total comes from the same pass (GROUPING SETS).
PARTITIONS = ("channel", "content", "cohort_week")


@reads_reports
def funnel_report(*, query: FunnelQuery) -> dict[str, Any]:
    """Per step: count, conversion from the previous and the first step, median seconds from the previous step,
    drop-off to the next; with `breakdown`, the same per group (a subscriber may be in several campaigns). Read from
    the funnel summary (campaigns.summary), never the interactions."""
    if connections[reports_alias()].vendor == "postgresql":
        overall_rows, grouped = _report_rows_postgresql(query)
    else:  # the embedded default (SQLite): the same numbers, aggregated in Python
        overall_rows, grouped = _report_rows_portable(query)
    return report_from_rows(query, overall_rows, grouped)


def report_from_rows(query: FunnelQuery, overall_rows: list, grouped: list) -> dict[str, Any]:
    """The report from its rows: (group, is_total, 4 counts, 3 medians in microseconds)."""
    breakdown = query.breakdown
    overall = overall_rows[0] if overall_rows else (None, 1, 0, 0, 0, 0, None, None, None)
    report: dict[str, Any] = {
        "from": query.start,
        "to": query.end,
        "window_days": query.window_days,
        "breakdown": breakdown,
        "steps": _steps(list(overall[2:6]), list(overall[6:9])),
        "groups": [],
    }
    if breakdown:
        labels = _labels(breakdown, [row[0] for row in grouped])
        grouped.sort(key=lambda row: (-row[2], *_key_order(row[0])))
        report["groups"] = [
            {
                "key": row[0],
                "label": labels.get(row[0], str(_("(none)"))),
                "steps": _steps(list(row[2:6]), list(row[6:9])),
            }
            for row in grouped
        ]
    return report


def _report_rows_postgresql(query: FunnelQuery) -> tuple[list, list]:
    """(overall rows, group rows), each (group, is_total, 4 counts, 3 medians in microseconds): from the summary's
    cells when they hold the report (campaigns.funnel_cells), else from the summary's rows."""
    if cells_answer(query):
        campaigns_of = campaigns_by_channel(reports_alias()) if query.breakdown == "campaign" else {}
        return cells_report_rows(query, _first_monday(query), campaigns_of)
    return report_rows_summary(query)


def report_rows_summary(query: FunnelQuery) -> tuple[list, list]:
    """The same rows in one or two statements over the summary's rows (every filter and window)."""
    where, params = _filters(query)
    breakdown = query.breakdown
    partition = breakdown in PARTITIONS or (breakdown == "campaign" and _campaigns_partition_channels())
    if partition:
        rows = _run(REPORT_SQL, where, params, breakdown, with_total=True)
        overall_rows = [row for row in rows if row[1]]
        grouped = [row for row in rows if not row[1] and (breakdown != "campaign" or row[0] is not None)]
    else:
        overall_rows = _run(REPORT_SQL, where, params, None)
        grouped = _run(REPORT_SQL, where, params, breakdown) if breakdown else []
    return overall_rows, grouped


def _median(values: list[int]) -> float | None:
    """percentile_cont(0.5) as PostgreSQL computes it over float8: the lower middle plus half the gap."""
    if not values:
        return None
    values.sort()
    lower = (len(values) - 1) // 2
    low, high = float(values[lower]), float(values[len(values) // 2])
    return low if len(values) % 2 else low + (high - low) * 0.5


def _report_rows_portable(query: FunnelQuery) -> tuple[list, list]:
    """The same rows as _report_rows_postgresql, from the summary's rows aggregated in Python: SQLite has no
    percentile_cont or GROUPING SETS. The embedded default holds thousands of subscribers, not millions; PostgreSQL
    keeps its single pass in SQL."""
    window_us = query.window_days * 86_400_000_000
    qs = FunnelStep.objects.filter(day__gte=query.start, day__lte=query.end).filter(
        Q(step=0) | Q(reach_us__lte=window_us)
    )
    memberships = Campaign.channels.through.objects
    if query.channel_id is not None:
        qs = qs.filter(channel_key=query.channel_id)
    if query.campaign_id is not None:
        qs = qs.filter(channel_key__in=memberships.filter(campaign_id=query.campaign_id).values("channel_id"))
    if query.tag is not None:
        tagged = Subscriber.tags.through.objects.filter(subscriber_id=OuterRef("subscriber_id"), tag__name=query.tag)
        qs = qs.filter(Exists(tagged))
    breakdown = query.breakdown
    monday = _first_monday(query)
    campaigns_of: dict[int, list[int]] = defaultdict(list)
    if breakdown == "campaign":
        for campaign_id, channel_id in memberships.values_list("campaign_id", "channel_id"):
            campaigns_of[channel_id].append(campaign_id)
    total = object()
    # Per group: the count of each step, and the delays of the steps reached within the window (for the medians).
    groups: dict[Any, tuple[list[int], list[list[int]]]] = {}

    def add(key: Any, step: int, delay: int) -> None:
        counts, lists = groups.setdefault(key, ([0, 0, 0, 0], [[], [], []]))
        counts[step] += 1
        if step:
            lists[step - 1].append(delay)

    rows = qs.order_by().values_list("step", "day", "channel_key", "content_key", "delay_us")
    for step, day, channel_key, content_key, delay in rows.iterator(chunk_size=2000):
        add(total, step, delay)
        if breakdown == "channel":
            add(str(channel_key) if channel_key else None, step, delay)
        elif breakdown == "content":
            add(str(content_key) if content_key else None, step, delay)
        elif breakdown == "cohort_week":
            add((monday + timedelta(days=(day - monday).days // 7 * 7)).strftime("%Y-%m-%d"), step, delay)
        elif breakdown == "campaign":
            for campaign_id in campaigns_of.get(channel_key, ()):
                add(str(campaign_id), step, delay)

    def row(key: Any) -> tuple:
        counts, lists = groups[key]
        return (None if key is total else key, int(key is total), *counts, *(_median(v) for v in lists))

    return ([row(total)] if total in groups else []), [row(key) for key in groups if key is not total]


def _campaigns_partition_channels() -> bool:
    """Whether no channel belongs to two campaigns."""
    with connections[reports_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM campaigns_campaign_channels GROUP BY channel_id HAVING count(*) > 1)"
        )
        return bool(cursor.fetchone()[0])


def _run(sql: str, where: str, params: dict[str, Any], breakdown: str | None, *, with_total: bool = False) -> list:
    group, join = _CAMPAIGN_PARTITION if breakdown == "campaign" and with_total else _GROUP_SQL[breakdown]
    if with_total:
        text = sql.format(
            group=group, join=join, where=where, grouping=f"GROUPING SETS (({group}), ())", total=f"GROUPING({group})"
        )
    else:
        text = sql.format(group=group, join=join, where=where, grouping=group, total="0")
    alias = reports_alias()
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        # The medians sort up to a million values each: in memory, not on disk. JIT only adds start-up time.
        cursor.execute("SET LOCAL work_mem = '128MB'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(text, params)
        rows = cursor.fetchall()
    if breakdown == "cohort_week":  # the week's Monday (YYYY-MM-DD)
        monday = params["monday"]
        return [
            (None if row[0] is None else (monday + timedelta(days=7 * row[0])).strftime("%Y-%m-%d"), *row[1:])
            for row in rows
        ]
    return [(None if row[0] is None else str(row[0]), *row[1:]) for row in rows]


def _first_monday(q: FunnelQuery) -> date:
    """The local Monday of the week of `start`."""
    return q.start - timedelta(days=q.start.weekday())


def _key_order(key: str | None) -> tuple[bool, int, str]:
    """Groups of the same size in the order of their keys, ids as numbers ("98" before "100", as on every
    database), the group of none last."""
    return key is None, int(key) if key and key.isdigit() else 0, key or ""


def _labels(breakdown: str, keys: list[str | None]) -> dict[str | None, str]:
    ids = [int(k) for k in keys if k is not None and k.isdigit()]
    if breakdown == "channel":
        return {str(pk): name for pk, name in Channel.objects.filter(pk__in=ids).values_list("pk", "name")}
    if breakdown == "campaign":
        return {str(pk): name for pk, name in Campaign.objects.filter(pk__in=ids).values_list("pk", "name")}
    if breakdown == "content":
        return {str(pk): title for pk, title in Article.objects.filter(pk__in=ids).values_list("pk", "title")}
    return {k: k for k in keys if k is not None}


# --- Drop-offs ---------------------------------------------------------------------------------------------------


def _reached(step: str, window: timedelta) -> Q:
    q = Q()
    for stage in ORDER[1 : ORDER.index(step) + 1]:
        field = STAGE_FIELDS[stage]
        q &= Q(**{f"{field}__isnull": False, f"{field}__lte": F("followed_at") + window})
    return q


def funnel_dropoffs(*, query: FunnelQuery, step: str) -> QuerySet[Subscriber]:
    """Subscribers who reached `step` (in the report's sense) and not the next one: the list to follow up."""
    if step not in ORDER[:-1]:
        raise ApplicationError(_("`step` must be one of: %s.") % ", ".join(ORDER[:-1]))
    lo, hi = query.bounds()
    window = timedelta(days=query.window_days)
    nxt = ORDER[ORDER.index(step) + 1]
    qs = Subscriber.objects.filter(followed_at__gte=lo, followed_at__lt=hi).filter(_reached(step, window))
    qs = qs.exclude(_reached(nxt, window))
    if query.channel_id is not None:
        qs = qs.filter(source_channel_id=query.channel_id)
    if query.campaign_id is not None:
        qs = qs.filter(source_channel__campaigns=query.campaign_id)
    if query.tag is not None:
        qs = qs.filter(tags__name=query.tag)
    return qs.select_related("source_channel").order_by("followed_at", "id")
