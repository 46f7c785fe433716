"""Messages sent to people as the fake accepts them: template messages, customer-service messages (within
WeChat's window, see :mod:`.window`) and mass sends (by openid list, to all or by tag; :mod:`.publishing` checks
their content), each with its job-finish event."""

from __future__ import annotations

import json
import random
from typing import Any

from .api import OK, Ctx, WeChatError, route
from .state import next_msgid
from .users import _tag_id, _user_row

MASS_PATHS = ("/cgi-bin/message/mass/send", "/cgi-bin/message/mass/sendall")
MASS_MSGTYPES = {"mpnews", "text", "voice", "image", "mpvideo", "wxcard"}
CUSTOM_MSGTYPES = {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu", "wxcard",
                   "miniprogrampage"}  # fmt: skip
MASS_JOB_FROM = "oFakeWeChatMassJobSystem0000"

# --- messages -------------------------------------------------------------------------------------------------


def _following_user(ctx: Ctx, openid: Any) -> dict[str, Any]:
    user = _user_row(ctx.conn, openid)
    if ctx.cfg["enforce_subscription"] and not user.get("subscribe"):
        raise WeChatError(43004)
    return user


def _pick(rates: dict[str, float], default: str) -> str:
    roll = random.random()
    for outcome, rate in rates.items():
        if roll < rate:
            return outcome
        roll -= rate
    return default


@route("/cgi-bin/message/template/send")
def template_send(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    user = _following_user(ctx, body.get("touser"))
    template_id = body.get("template_id")
    if not isinstance(template_id, str) or not template_id:
        raise WeChatError(40037)
    if "data" in body and not isinstance(body["data"], dict):
        raise WeChatError(47001)
    msgid = next_msgid(ctx.conn)
    status = _pick(ctx.cfg["template_failure_rates"], "success")
    ctx.events.append(("TEMPLATESENDJOBFINISH", user["openid"], {"MsgID": msgid, "Status": status}))
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


@route("/cgi-bin/message/custom/send")
def custom_send(ctx: Ctx) -> dict[str, Any]:
    from . import window

    body = ctx.json()
    user = _following_user(ctx, body.get("touser"))
    msgtype = body.get("msgtype")
    if msgtype not in CUSTOM_MSGTYPES or not isinstance(body.get(msgtype), dict):
        raise WeChatError(40008)
    if msgtype == "text" and not body["text"].get("content"):
        raise WeChatError(44002, "empty content")
    if ctx.cfg["enforce_cs_window"]:  # WeChat's customer-service window (window.py): 45015 outside, 45047 beyond
        errcode = window.state(ctx.conn, user["openid"], ctx.now)["errcode"]
        if errcode:
            raise WeChatError(errcode)
        window.sent(ctx.conn, user["openid"], ctx.now)
    return dict(OK)


def _mass_common(ctx: Ctx, body: dict[str, Any], *, by_openid: bool) -> tuple[str, str | None, list]:
    msgtype = body.get("msgtype")
    content_key = "images" if msgtype == "image" and "images" in body else msgtype
    if msgtype not in MASS_MSGTYPES or not isinstance(body.get(content_key), dict):
        raise WeChatError(40008)
    clientmsgid = body.get("clientmsgid")
    if clientmsgid is not None:
        if not isinstance(clientmsgid, str) or len(clientmsgid.encode()) > 64:
            raise WeChatError(47001, "data format error, clientmsgid must be a string of up to 64 bytes")
        row = ctx.conn.execute(
            "SELECT msg_id FROM clientmsgids WHERE clientmsgid = ? AND at > ?", (clientmsgid, ctx.now - 86400)
        ).fetchone()
        if row:
            raise WeChatError(45065, msg_id=row[0])
    from .publishing import mass_check

    return msgtype, clientmsgid, mass_check(ctx, body, by_openid=by_openid)


def _mass_job(
    ctx: Ctx, msgtype: str, clientmsgid: str | None, total: int, reachable: list[str], articles: list
) -> dict[str, Any]:
    from .publishing import mass_filter, mass_sent

    reachable = mass_filter(ctx, reachable)
    msg_id = next_msgid(ctx.conn)
    if clientmsgid is not None:
        ctx.conn.execute(
            "INSERT OR REPLACE INTO clientmsgids (clientmsgid, msg_id, at) VALUES (?, ?, ?)",
            (clientmsgid, msg_id, ctx.now),
        )
    rate = float(ctx.cfg["mass_error_rate"])
    errors = sum(1 for _ in reachable if random.random() < rate) if rate else 0
    sent = len(reachable) - errors
    status = "send success" if sent or not reachable else "send fail"
    msg_data_id = msg_id % 10**10
    extra = mass_sent(
        ctx, msg_id=msg_id, msg_data_id=msg_data_id, msgtype=msgtype, receivers=reachable, sent=sent, articles=articles
    )
    ctx.events.append(
        (
            "MASSSENDJOBFINISH",
            MASS_JOB_FROM,
            {
                "MsgID": msg_id,
                "Status": status,
                "TotalCount": total,
                "FilterCount": len(reachable),
                "SentCount": sent,
                "ErrorCount": errors,
                **extra,
            },
        )
    )
    counts = {"TotalCount": total, "FilterCount": len(reachable), "SentCount": sent, "ErrorCount": errors}
    ctx.conn.execute(
        "INSERT INTO mass_jobs (msg_id, status, data) VALUES (?, ?, ?)",
        (msg_id, "SEND_SUCCESS" if status == "send success" else "SEND_FAIL", json.dumps(counts)),
    )
    result: dict[str, Any] = {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id}
    if msgtype == "mpnews":
        result["msg_data_id"] = msg_data_id
    return result


@route("/cgi-bin/message/mass/send")
def mass_send(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    touser = body.get("touser")
    if not isinstance(touser, list) or len(touser) < 2:
        raise WeChatError(40130)
    if len(touser) > 10000 or not all(isinstance(o, str) for o in touser):
        raise WeChatError(40032)
    msgtype, clientmsgid, articles = _mass_common(ctx, body, by_openid=True)
    reachable = []
    for start in range(0, len(touser), 500):
        chunk = touser[start : start + 500]
        marks = ",".join("?" * len(chunk))
        reachable += [
            r[0]
            for r in ctx.conn.execute(
                f"SELECT openid FROM users WHERE subscribe = 1 AND openid IN ({marks})",  # noqa: S608
                chunk,
            )
        ]
    return _mass_job(ctx, msgtype, clientmsgid, len(touser), reachable, articles)


@route("/cgi-bin/message/mass/sendall")
def mass_sendall(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    flt = body.get("filter")
    if not isinstance(flt, dict):
        raise WeChatError(47001)
    msgtype, clientmsgid, articles = _mass_common(ctx, body, by_openid=False)
    if flt.get("is_to_all"):
        reachable = [r[0] for r in ctx.conn.execute("SELECT openid FROM users WHERE subscribe = 1")]
        total = len(reachable)
    else:
        tag_id = _tag_id(ctx, flt.get("tag_id"))
        members = [r[0] for r in ctx.conn.execute("SELECT openid FROM user_tags WHERE tagid = ?", (tag_id,))]
        total = len(members)
        reachable = [
            r[0]
            for r in ctx.conn.execute(
                "SELECT u.openid FROM users u JOIN user_tags t ON t.openid = u.openid "
                "WHERE t.tagid = ? AND u.subscribe = 1",
                (tag_id,),
            )
        ]
    return _mass_job(ctx, msgtype, clientmsgid, total, reachable, articles)


@route("/cgi-bin/message/mass/get")
def mass_get(ctx: Ctx) -> dict[str, Any]:
    msg_id = ctx.json().get("msg_id")
    try:
        msg_id = int(msg_id)
    except (TypeError, ValueError):
        raise WeChatError(47001) from None
    row = ctx.conn.execute("SELECT status FROM mass_jobs WHERE msg_id = ?", (msg_id,)).fetchone()
    if row is None:
        raise WeChatError(40007, "invalid msg_id")
    return {"msg_id": msg_id, "msg_status": row[0]}
