"""WeChat's statistics, pulled once a day and stored: a day's figures are there from the next day on.

`stats_pull(begin=, end=)` reads every report over the range, in the longest pieces WeChat allows (1 day for the
article reports, 3 for getuserread, 7 for the others), and upserts one row per report line, so pulling a day again
replaces its figures. `stats_pull_yesterday()` is the daily task's call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.translation import gettext as _

from wechat_crm.wechat.errors import WeChatError
from wechat_crm.wechat.messages import DATACUBE_REPORTS

from ..errors import WeChatRefused
from ..models import AccountDailyStat, ArticleDailyStat

R = AccountDailyStat.Report
MAX_RANGE_DAYS = 366


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _pieces(begin: dt.date, end: dt.date, days: int) -> Iterator[tuple[dt.date, dt.date]]:
    start = begin
    while start <= end:
        stop = min(end, start + dt.timedelta(days=days - 1))
        yield start, stop
        start = stop + dt.timedelta(days=1)


def wechat_today(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(ZoneInfo("Asia/Shanghai")).date()


def _rows(report: str, begin: dt.date, end: dt.date) -> list[dict[str, Any]]:
    from wechat_crm.wechat.client import get_client

    client = get_client()
    rows: list[dict[str, Any]] = []
    try:
        for start, stop in _pieces(begin, end, DATACUBE_REPORTS[report]):
            rows += client.datacube_report(report, begin=start, end=stop)
    except WeChatError as exc:
        raise WeChatRefused(
            _("WeChat refused the statistics %(report)s: %(error)s") % {"report": report, "error": exc.message},
            extra={"errcode": exc.errcode, "report": report},
        ) from exc
    return rows


def _article(row: dict[str, Any]) -> tuple[dt.date, str, int, int] | None:
    msgid = str(row.get("msgid") or "")
    data_id, _sep, index = msgid.partition("_")
    if not data_id.isdigit() or not index.isdigit():
        return None
    return dt.date.fromisoformat(str(row["ref_date"])), msgid, int(data_id), int(index)


def stats_pull(*, begin: dt.date, end: dt.date, now: dt.datetime | None = None) -> dict[str, int]:
    """Pull and store every report over [begin, end]. The end must be before today (WeChat's data comes the next
    day); ValueError for a range that is empty, in the future or longer than a year. Returns rows per report."""
    today = wechat_today(now)
    if end < begin or end >= today or (end - begin).days >= MAX_RANGE_DAYS:
        raise ValueError(_("Choose dates before today (WeChat's figures come the next day), at most a year apart."))
    counts = dict.fromkeys(DATACUBE_REPORTS, 0)
    for row in _rows("getarticlesummary", begin, end):
        key = _article(row)
        if key is None:
            continue
        ref_date, msgid, data_id, index = key
        ArticleDailyStat.objects.update_or_create(
            ref_date=ref_date, msgid=msgid,
            defaults={
                "msg_data_id": data_id, "index": index, "title": str(row.get("title") or "")[:200],
                "read_user": _int(row.get("int_page_read_user")), "read_count": _int(row.get("int_page_read_count")),
                "share_user": _int(row.get("share_user")), "share_count": _int(row.get("share_count")),
                "fav_user": _int(row.get("add_to_fav_user")),
            },
        )  # fmt: skip
        counts["getarticlesummary"] += 1
    for row in _rows("getarticletotal", begin, end):
        key = _article(row)
        details = [d for d in row.get("details") or [] if isinstance(d, dict)]
        if key is None or not details:
            continue
        ref_date, msgid, data_id, index = key
        latest = max(details, key=lambda d: str(d.get("stat_date", "")))
        readers = _int(latest.get("int_page_read_user"))
        session = _int(latest.get("int_page_from_session_read_user"))
        ArticleDailyStat.objects.update_or_create(
            ref_date=ref_date, msgid=msgid,
            defaults={
                "msg_data_id": data_id, "index": index, "title": str(row.get("title") or "")[:200],
                "target_user": _int(latest.get("target_user")), "read_from_session": session,
                "read_from_other": max(0, readers - session), "data": latest,
            },
        )  # fmt: skip
        counts["getarticletotal"] += 1
    account = (
        ("getusersummary", R.FOLLOWERS, "user_source", {"new_user": "new_user", "cancel_user": "cancel_user"}),
        ("getusercumulate", R.CUMULATE, None, {"cumulate_user": "cumulate_user"}),
        ("getuserread", R.READ, "user_source", {"read_user": "int_page_read_user", "read_count": "int_page_read_count",
                                               "share_user": "share_user", "share_count": "share_count"}),
        ("getusershare", R.SHARE, "share_scene", {"share_user": "share_user", "share_count": "share_count"}),
    )  # fmt: skip
    for report, kind, source_key, fields in account:
        for row in _rows(report, begin, end):
            AccountDailyStat.objects.update_or_create(
                ref_date=dt.date.fromisoformat(str(row["ref_date"])),
                report=kind,
                source=str(row.get(source_key, "")) if source_key else "",
                defaults={ours: _int(row.get(theirs)) for ours, theirs in fields.items()},
            )
            counts[report] += 1
    return counts


def stats_pull_yesterday(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The daily task: yesterday's figures (Beijing time), which WeChat has from today on."""
    yesterday = wechat_today(now) - dt.timedelta(days=1)
    return stats_pull(begin=yesterday, end=yesterday, now=now)
