"""WeChat's datacube (数据统计) as the fake serves it, under ``/datacube/``, with WeChat's shapes and limits.

Each report takes ``begin_date`` and ``end_date`` (YYYY-MM-DD, Beijing time). A day's data is there from the next
day on: an ``end_date`` of today or later, a begin after the end, or a range longer than the report allows is
61501 "date range error"; a malformed date is 61500. The longest ranges are WeChat's: 1 day for the article
reports, 3 for getuserread, 7 for getusershare, getusersummary and getusercumulate.

Figures come from the fake's own state: mass-sent articles (publishing.py counts their reads and shares on the day
of the send), and followers' subscribe/unsubscribe times for the user reports.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from .api import Ctx, WeChatError, route
from .publishing import WECHAT_TZ, today

MAX_DAYS = {
    "getarticlesummary": 1,
    "getarticletotal": 1,
    "getuserread": 3,
    "getusershare": 7,
    "getusersummary": 7,
    "getusercumulate": 7,
}
SCENE_SOURCES = {"ADD_SCENE_SEARCH": 1, "ADD_SCENE_PROFILE_CARD": 17, "ADD_SCENE_QR_CODE": 30, "ADD_SCENE_PAID": 51,
                 "ADD_SCENE_PROFILE_ITEM": 57}  # fmt: skip
SUMMARY_KEYS = ("int_page_read_user", "int_page_read_count", "ori_page_read_user", "ori_page_read_count",
                "share_user", "share_count", "add_to_fav_user", "add_to_fav_count")  # fmt: skip


def _range(ctx: Ctx, report: str) -> list[dt.date]:
    body = ctx.json()
    try:
        begin = dt.date.fromisoformat(str(body.get("begin_date")))
        end = dt.date.fromisoformat(str(body.get("end_date")))
    except ValueError:
        raise WeChatError(61500, "date format error") from None
    if end < begin or end >= today(ctx) or (end - begin).days + 1 > MAX_DAYS[report]:
        raise WeChatError(61501, "date range error")
    return [begin + dt.timedelta(days=i) for i in range((end - begin).days + 1)]


def _articles(ctx: Ctx, days: list[dt.date]) -> list[tuple[str, str, dict[str, Any]]]:
    marks = ",".join("?" * len(days))
    rows = ctx.conn.execute(
        f"SELECT msgid, ref_date, data FROM article_stats WHERE ref_date IN ({marks}) ORDER BY ref_date, msgid",  # noqa: S608
        [d.isoformat() for d in days],
    )
    return [(m, r, json.loads(d)) for m, r, d in rows]


@route("/datacube/getarticlesummary")
def article_summary(ctx: Ctx) -> dict[str, Any]:
    rows = _articles(ctx, _range(ctx, "getarticlesummary"))
    return {
        "list": [
            {"ref_date": ref, "msgid": msgid, "title": d["title"], **{k: d[k] for k in SUMMARY_KEYS}}
            for msgid, ref, d in rows
        ]
    }


@route("/datacube/getarticletotal")
def article_total(ctx: Ctx) -> dict[str, Any]:
    rows = _articles(ctx, _range(ctx, "getarticletotal"))
    result = []
    for msgid, ref, d in rows:
        details = {k: v for k, v in d.items() if k != "title"}
        detail = {"stat_date": ref, **details}
        result.append({"ref_date": ref, "msgid": msgid, "title": d["title"], "details": [detail]})
    return {"list": result}


@route("/datacube/getuserread")
def user_read(ctx: Ctx) -> dict[str, Any]:
    days = _range(ctx, "getuserread")
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _msgid, ref, d in _articles(ctx, days):
        for key in SUMMARY_KEYS:
            totals[ref][key] += d[key]
    return {"list": [{"ref_date": ref, "user_source": 99999999, **dict(v)} for ref, v in sorted(totals.items())]}


@route("/datacube/getusershare")
def user_share(ctx: Ctx) -> dict[str, Any]:
    days = _range(ctx, "getusershare")
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _msgid, ref, d in _articles(ctx, days):
        totals[ref][0] += d["share_count"]
        totals[ref][1] += d["share_user"]
    return {
        "list": [
            {"ref_date": ref, "share_scene": 1, "share_count": count, "share_user": users}
            for ref, (count, users) in sorted(totals.items())
        ]
    }


def _day_of(timestamp: Any) -> str | None:
    if not isinstance(timestamp, int | float) or not timestamp:
        return None
    return dt.datetime.fromtimestamp(timestamp, WECHAT_TZ).date().isoformat()


def _users(ctx: Ctx) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in ctx.conn.execute("SELECT data FROM users")]


@route("/datacube/getusersummary")
def user_summary(ctx: Ctx) -> dict[str, Any]:
    days = {d.isoformat() for d in _range(ctx, "getusersummary")}
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for user in _users(ctx):
        followed = _day_of(user.get("subscribe_time"))
        if followed in days:
            counts[(followed, SCENE_SOURCES.get(user.get("subscribe_scene", ""), 0))][0] += 1
        left = _day_of(user.get("unsubscribe_time")) if not user.get("subscribe") else None
        if left in days:
            counts[(left, 0)][1] += 1
    return {
        "list": [
            {"ref_date": day, "user_source": source, "new_user": new, "cancel_user": cancel}
            for (day, source), (new, cancel) in sorted(counts.items())
        ]
    }


@route("/datacube/getusercumulate")
def user_cumulate(ctx: Ctx) -> dict[str, Any]:
    users = _users(ctx)
    result = []
    for day in _range(ctx, "getusercumulate"):
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), WECHAT_TZ).timestamp()
        total = sum(
            1
            for u in users
            if u.get("subscribe_time", 0) < end and (u.get("subscribe") or u.get("unsubscribe_time", 0) >= end)
        )
        result.append({"ref_date": day.isoformat(), "cumulate_user": total})
    return {"list": result}
