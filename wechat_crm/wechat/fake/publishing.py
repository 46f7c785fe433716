"""WeChat's publishing API as the fake serves it: drafts, publishing (发布), mass-send previews and the mpnews side
of mass sends, with WeChat's limits and error codes.

* Permanent material and body images: see :mod:`.materials`.
* ``draft/add`` (1 to 8 articles), ``draft/update``, ``draft/get``, ``draft/delete``, ``draft/count``,
  ``draft/batchget``. A draft that is mass-sent or published leaves the draft box (its media_id is then 40007).
* ``freepublish/submit`` / ``freepublish/get``; PUBLISHJOBFINISH is posted back to the callback.
* ``message/mass/preview`` to an openid or a WeChat ID.
* Mass sends: the account's type decides the rules (``account_type`` in the config). A subscription account sends
  once a day (45028 beyond) and never to a list of openids (48001); on a service account each follower receives
  at most 4 mass messages a month (the rest are filtered out of the job's counts). An mpnews send needs a draft's
  media_id; its MASSSENDJOBFINISH carries ArticleUrlResult and CopyrightCheckResult, and its articles' reads and
  shares are counted for datacube (see datacube.py) on the day of the send.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from .api import OK, Ctx, WeChatError, route
from .materials import _error
from .sending import MASS_JOB_FROM, _following_user
from .state import next_counter

WECHAT_TZ = ZoneInfo("Asia/Shanghai")
MAX_ARTICLES = 8
REFUSED_TAGS = re.compile(r"<\s*(script|iframe|form|input|object|embed|style|link|meta)\b", re.I)
SERVICE_MONTHLY_PER_USER = 4
SUBSCRIPTION_DAILY = 1


def today(ctx: Ctx) -> dt.date:
    """The fake's date in Beijing time, moved by ``clock_offset`` seconds."""
    return dt.datetime.fromtimestamp(ctx.now + float(ctx.cfg["clock_offset"]), WECHAT_TZ).date()


# --- drafts ----------------------------------------------------------------------------------------------------

ARTICLE_TEXT_LIMITS = (("title", 64, 45003, True), ("author", 16, 45110, False), ("digest", 128, 45004, False))


def _article(ctx: Ctx, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise WeChatError(47001)
    for key, limit, code, required in ARTICLE_TEXT_LIMITS:
        value = raw.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
            raise _error(code)
    content = raw.get("content")
    if not isinstance(content, str) or not content.strip():
        raise WeChatError(44002, "empty content")
    if len(content) > 20000 or len(content.encode()) > 1024 * 1024:
        raise _error(45002)
    if REFUSED_TAGS.search(content):
        raise _error(45166)
    source = raw.get("content_source_url", "")
    if not isinstance(source, str) or len(source.encode()) > 1024:
        raise WeChatError(47001, "data format error, content_source_url")
    thumb = raw.get("thumb_media_id")
    if not ctx.conn.execute("SELECT 1 FROM materials WHERE media_id = ?", (thumb,)).fetchone():
        raise _error(40007)
    for flag in ("need_open_comment", "only_fans_can_comment"):
        if raw.get(flag, 0) not in (0, 1):
            raise WeChatError(47001, f"data format error, {flag}")
    article = {k: raw.get(k, "") for k in ("title", "author", "digest", "content", "content_source_url")}
    article.update(
        thumb_media_id=thumb,
        need_open_comment=raw.get("need_open_comment", 0),
        only_fans_can_comment=raw.get("only_fans_can_comment", 0),
        url="https://mp.weixin.qq.com/s/" + secrets.token_urlsafe(16),
        thumb_url="",
    )
    return article


def _draft(ctx: Ctx, media_id: Any) -> dict[str, Any]:
    row = ctx.conn.execute("SELECT data FROM drafts WHERE media_id = ?", (media_id,)).fetchone()
    if row is None:
        raise _error(40007)
    return json.loads(row[0])


def draft_articles(ctx: Ctx, media_id: Any) -> list[dict[str, Any]]:
    """The articles of a draft in the draft box (40007 when there is none with that media_id)."""
    return _draft(ctx, media_id)["news_item"]


@route("/cgi-bin/draft/add")
def draft_add(ctx: Ctx) -> dict[str, Any]:
    articles = ctx.json().get("articles")
    if not isinstance(articles, list) or not 1 <= len(articles) <= MAX_ARTICLES:
        raise WeChatError(47001, "data format error, articles must hold 1 to 8 articles")
    items = [_article(ctx, a) for a in articles]
    media_id = secrets.token_urlsafe(32)
    data = {"news_item": items, "create_time": int(ctx.now), "update_time": int(ctx.now)}
    ctx.conn.execute(
        "INSERT INTO drafts (media_id, data, update_time) VALUES (?, ?, ?)", (media_id, json.dumps(data), int(ctx.now))
    )
    return {"media_id": media_id}


@route("/cgi-bin/draft/update")
def draft_update(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    data = _draft(ctx, body.get("media_id"))
    index = body.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(data["news_item"]):
        raise WeChatError(47001, "data format error, index out of range")
    data["news_item"][index] = _article(ctx, body.get("articles"))
    data["update_time"] = int(ctx.now)
    ctx.conn.execute(
        "UPDATE drafts SET data = ?, update_time = ? WHERE media_id = ?",
        (json.dumps(data), int(ctx.now), body["media_id"]),
    )
    return dict(OK)


@route("/cgi-bin/draft/get")
def draft_get(ctx: Ctx) -> dict[str, Any]:
    data = _draft(ctx, ctx.json().get("media_id"))
    return {"news_item": data["news_item"]}


@route("/cgi-bin/draft/delete")
def draft_delete(ctx: Ctx) -> dict[str, Any]:
    cur = ctx.conn.execute("DELETE FROM drafts WHERE media_id = ?", (ctx.json().get("media_id"),))
    if not cur.rowcount:
        raise _error(40007)
    return dict(OK)


@route("/cgi-bin/draft/count")
def draft_count(ctx: Ctx) -> dict[str, Any]:
    return {"total_count": ctx.conn.execute("SELECT COUNT(*) FROM drafts").fetchone()[0]}


@route("/cgi-bin/draft/batchget")
def draft_batchget(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    offset, count = body.get("offset", 0), body.get("count", 20)
    if not isinstance(offset, int) or not isinstance(count, int) or offset < 0 or not 1 <= count <= 20:
        raise WeChatError(47001)
    total = ctx.conn.execute("SELECT COUNT(*) FROM drafts").fetchone()[0]
    rows = ctx.conn.execute(
        "SELECT media_id, data, update_time FROM drafts ORDER BY update_time DESC LIMIT ? OFFSET ?", (count, offset)
    ).fetchall()
    items = [
        {"media_id": m, "content": {"news_item": json.loads(d)["news_item"]}, "update_time": t} for m, d, t in rows
    ]
    return {"total_count": total, "item_count": len(items), "item": items}


# --- publishing ------------------------------------------------------------------------------------------------


@route("/cgi-bin/freepublish/submit")
def freepublish_submit(ctx: Ctx) -> dict[str, Any]:
    media_id = ctx.json().get("media_id")
    articles = draft_articles(ctx, media_id)
    publish_id = str(next_counter(ctx.conn, "publish_id") + 2247483647)
    article_id = secrets.token_urlsafe(32)
    detail = {"count": len(articles), "item": [{"idx": i, "article_url": a["url"]} for i, a in enumerate(articles, 1)]}
    result = {"publish_id": publish_id, "publish_status": 0, "article_id": article_id, "article_detail": detail}
    ctx.conn.execute(
        "INSERT INTO publishes (publish_id, media_id, data) VALUES (?, ?, ?)",
        (publish_id, media_id, json.dumps({**result, "fail_idx": []})),
    )
    ctx.conn.execute("DELETE FROM drafts WHERE media_id = ?", (media_id,))
    ctx.events.append(("PUBLISHJOBFINISH", MASS_JOB_FROM, {"PublishEventInfo": result}))
    return {"errcode": 0, "errmsg": "ok", "publish_id": publish_id, "msg_data_id": int(publish_id)}


@route("/cgi-bin/freepublish/get")
def freepublish_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.conn.execute("SELECT data FROM publishes WHERE publish_id = ?", (str(ctx.json().get("publish_id")),))
    found = row.fetchone()
    if found is None:
        raise WeChatError(53600, "Article ID 无效")
    return json.loads(found[0])


# --- previews and mass sends -------------------------------------------------------------------------------------


@route("/cgi-bin/message/mass/preview")
def mass_preview(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    if body.get("towxname"):
        if not isinstance(body["towxname"], str):
            raise WeChatError(47001)
    else:
        _following_user(ctx, body.get("touser"))
    msgtype = body.get("msgtype")
    content = body.get(msgtype) if isinstance(msgtype, str) else None
    if msgtype not in ("mpnews", "text", "image", "voice", "mpvideo", "wxcard") or not isinstance(content, dict):
        raise WeChatError(40008)
    if msgtype == "mpnews":
        draft_articles(ctx, content.get("media_id"))
    return {"errcode": 0, "errmsg": "preview success", "msg_id": next_counter(ctx.conn, "preview_id")}


def mass_check(ctx: Ctx, body: dict[str, Any], *, by_openid: bool) -> list[dict[str, Any]]:
    """The account-type rules of a mass send, before anything is sent; the draft's articles for mpnews."""
    day = today(ctx)
    if ctx.cfg["account_type"] == "subscription":
        if by_openid:
            raise WeChatError(48001, "api unauthorized, sending to an openid list needs a service account")
        sent_today = ctx.conn.execute("SELECT COUNT(*) FROM mass_sends WHERE day = ?", (day.isoformat(),)).fetchone()
        if sent_today[0] >= SUBSCRIPTION_DAILY:
            raise WeChatError(45028)
    if body.get("msgtype") != "mpnews":
        return []
    if body.get("send_ignore_reprint", 0) not in (0, 1):
        raise WeChatError(47001, "data format error, send_ignore_reprint")
    return draft_articles(ctx, body["mpnews"].get("media_id"))


def mass_filter(ctx: Ctx, reachable: list[str]) -> list[str]:
    """On a service account, followers who had their 4 mass messages this month are left out."""
    if ctx.cfg["account_type"] != "service" or not reachable:
        return reachable
    month = today(ctx).strftime("%Y-%m")
    full = set()
    for start in range(0, len(reachable), 500):
        chunk = reachable[start : start + 500]
        marks = ",".join("?" * len(chunk))
        full.update(
            r[0]
            for r in ctx.conn.execute(
                f"SELECT openid FROM mass_receipts WHERE month = ? AND n >= ? AND openid IN ({marks})",  # noqa: S608
                (month, SERVICE_MONTHLY_PER_USER, *chunk),
            )
        )
    return [o for o in reachable if o not in full] if full else reachable


def mass_sent(
    ctx: Ctx, *, msg_id: int, msg_data_id: int, msgtype: str, receivers: list[str], sent: int, articles: list
) -> dict[str, Any]:
    """Record a mass send (quotas, datacube's figures, the draft leaving the box); its job-finish extra fields."""
    day = today(ctx)
    ctx.conn.execute(
        "INSERT INTO mass_sends (msg_id, day, month, msgtype) VALUES (?, ?, ?, ?)",
        (msg_id, day.isoformat(), day.strftime("%Y-%m"), msgtype),
    )
    ctx.conn.executemany(
        "INSERT INTO mass_receipts (openid, month, n) VALUES (?, ?, 1) "
        "ON CONFLICT (openid, month) DO UPDATE SET n = n + 1",
        [(o, day.strftime("%Y-%m")) for o in receivers],
    )
    if not articles:
        return {}
    ctx.conn.execute("DELETE FROM drafts WHERE media_id = ?", (ctx.json()["mpnews"].get("media_id"),))
    urls, checks = [], []
    for idx, article in enumerate(articles, 1):
        url = f"https://mp.weixin.qq.com/s?__biz=MzFake&mid={msg_data_id}&idx={idx}&sn={secrets.token_hex(16)}"
        urls.append({"ArticleIdx": idx, "ArticleUrl": url})
        checks.append(
            {"ArticleIdx": idx, "UserDeclareState": 0, "AuditState": 2, "OriginalArticleUrl": "",
             "OriginalArticleType": 0, "CanReprint": 1, "NeedReplaceContent": 0, "NeedShowReprintSource": 0}
        )  # fmt: skip
        _article_stats(ctx, f"{msg_data_id}_{idx}", day, article["title"], sent)
    return {
        "ArticleUrlResult": {"Count": len(urls), "ResultList": {"item": urls}},
        "CopyrightCheckResult": {"Count": len(checks), "ResultList": {"item": checks}, "CheckState": 2},
    }


def _article_stats(ctx: Ctx, msgid: str, day: dt.date, title: str, sent: int) -> None:
    """Reads and shares of a mass-sent article as WeChat's datacube reports them: a fixed share of its receivers."""
    read_user = math.ceil(sent * 0.6)
    session = math.ceil(read_user * 0.75)
    friends = math.ceil((read_user - session) / 2)
    share_user = math.ceil(read_user * 0.2)
    figures = {
        "target_user": sent,
        "int_page_read_user": read_user,
        "int_page_read_count": read_user + sent // 5,
        "ori_page_read_user": 0,
        "ori_page_read_count": 0,
        "share_user": share_user,
        "share_count": share_user * 2,
        "add_to_fav_user": read_user // 10,
        "add_to_fav_count": read_user // 10,
        "int_page_from_session_read_user": session,
        "int_page_from_session_read_count": session,
        "int_page_from_friends_read_user": friends,
        "int_page_from_friends_read_count": friends,
        "int_page_from_feed_read_user": read_user - session - friends,
        "int_page_from_feed_read_count": read_user - session - friends,
        "int_page_from_hist_msg_read_user": 0,
        "int_page_from_hist_msg_read_count": 0,
        "int_page_from_other_read_user": 0,
        "int_page_from_other_read_count": 0,
    }
    ctx.conn.execute(
        "INSERT OR REPLACE INTO article_stats (msgid, ref_date, data) VALUES (?, ?, ?)",
        (msgid, day.isoformat(), json.dumps({"title": title, **figures})),
    )
