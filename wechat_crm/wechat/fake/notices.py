"""Subscription notices (订阅通知) as the fake WeChat serves them.

* ``/wxaapi/newtmpl/*``: the account's categories, WeChat's public library of titles and their keywords (a small
  fixed library below), adding a library title to the account (``addtemplate``: tid, 2 to 5 kids, a scene of at
  most 15 characters; answers ``priTmplId``), the account's templates (``gettemplate``) and deleting one.
* ``/cgi-bin/message/subscribe/bizsend``: 40003 for an unknown openid, 40037 for a template the account does not
  have, 47003 for data that break the keywords' rules (or miss a keyword), 43101 for a person who has not accepted
  the template (a one-time template's acceptance allows one notice, then it is used up). An accepted notice is
  answered with a msgid, and ``subscribe_msg_sent_event`` follows on the callback.
* People's decisions (the control API ``POST /_fake/users/<openid>/notices``): accepting or rejecting templates in
  WeChat's popup posts ``subscribe_msg_popup_event``; rejecting later in WeChat's settings posts
  ``subscribe_msg_change_event``.

The value rules are written again here, apart from the product's (wechat_crm.wechat.notice_rules): the fake must not
share code with the product it stands in for.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from typing import Any

from .api import OK, Ctx, WeChatError, route
from .sending import _pick
from .state import next_msgid
from .users import _user_row

ERRMSG = {
    43101: "user refuse to accept the msg",
    47003: "argument invalid!",
    200011: "此账号已被封禁，无法操作",
    200014: "模版 tid 参数错误",
    200020: "关键词列表 kidList 参数错误",
    200021: "场景描述 sceneDesc 参数错误",
}

CATEGORIES = [{"id": 616, "name": "公交"}, {"id": 307, "name": "电商平台"}]
# tid -> (title, type, category, [(kid, name, rule, example)]); type 2: one-time, 3: long-term.
LIBRARY: dict[str, tuple[str, int, int, list[tuple[int, str, str, str]]]] = {
    "1001": ("订单发货通知", 2, 307, [(1, "商品名称", "thing", "休闲运动鞋"), (2, "快递单号", "character_string",
             "SF1234567890"), (3, "发货时间", "time", "2024年5月1日 15:01"), (4, "订单金额", "amount", "¥199.00"),
             (5, "收货人", "name", "张三")]),
    "1002": ("活动开始提醒", 2, 307, [(1, "活动名称", "thing", "周年庆"), (2, "开始时间", "time", "15:00"),
             (3, "活动地点", "thing", "线上"), (4, "状态", "phrase", "进行中"), (5, "剩余名额", "number", "20")]),
    "1003": ("公交到站提醒", 3, 616, [(1, "线路", "thing", "1路"), (2, "到站时间", "time", "08:10"),
             (3, "车牌号", "car_number", "粤A8Z888"), (4, "日期", "date", "2024-05-01")]),
}  # fmt: skip

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CHECKS: dict[str, Any] = {
    "thing": lambda v: len(v) <= 20,
    "number": lambda v: len(v) <= 32 and re.fullmatch(r"-?\d+(\.\d+)?", v),
    "letter": lambda v: len(v) <= 32 and re.fullmatch(r"[A-Za-z]+", v),
    "symbol": lambda v: len(v) <= 5 and not re.search(rf"[\w\s{_CJK}]", v),
    "character_string": lambda v: len(v) <= 32 and not re.search(rf"[\s{_CJK}]", v),
    "time": lambda v: all(re.fullmatch(r"(\S+\s*)?([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?", p.strip())
                          for p in v.split("~")),
    "date": lambda v: all(re.fullmatch(r"(\d{4}年)?(\d{1,2}月)?(\d{1,2}日)?|\d{2,4}([-/.]\d{1,2}){1,2}", p.strip()
                                       .split(" ")[0]) for p in v.split("~")),
    "amount": lambda v: re.fullmatch(r"[¥￥$€£]?\d{1,10}(\.\d+)?元?", v),
    "phone_number": lambda v: len(v) <= 17 and re.fullmatch(r"[\d+\-() ]+", v),
    "car_number": lambda v: len(v) <= 8,
    "name": lambda v: len(v) <= (10 if re.search(f"[{_CJK}]", v) else 20),
    "phrase": lambda v: len(v) <= 5 and re.fullmatch(f"[{_CJK}]+", v),
}  # fmt: skip


def _error(code: int) -> WeChatError:
    return WeChatError(code, ERRMSG.get(code))


def _template(conn: sqlite3.Connection, template_id: Any) -> dict[str, Any] | None:
    if not isinstance(template_id, str):
        return None
    row = conn.execute("SELECT data FROM notice_templates WHERE template_id = ?", (template_id,)).fetchone()
    return json.loads(row[0]) if row else None


@route("/cgi-bin/message/subscribe/bizsend")
def notice_send(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    user = _user_row(ctx.conn, body.get("touser"))
    template = _template(ctx.conn, body.get("template_id"))
    if template is None:
        raise WeChatError(40037)
    data = body.get("data")
    if not isinstance(data, dict):
        raise _error(47003)
    for key, rule in template["rules"].items():
        item = data.get(key)
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, str) or not value or "\n" in value or not _CHECKS[rule](value):
            raise WeChatError(47003, f"argument invalid! data.{key}.value invalid")
    openid = user["openid"]
    row = ctx.conn.execute(
        "SELECT accepted, credits FROM notice_consents WHERE openid = ? AND template_id = ?",
        (openid, template["template_id"]),
    ).fetchone()
    if row is None or not row[0] or (template["type"] == 2 and row[1] <= 0):
        raise _error(43101)
    if template["type"] == 2:
        ctx.conn.execute(
            "UPDATE notice_consents SET credits = credits - 1 WHERE openid = ? AND template_id = ?",
            (openid, template["template_id"]),
        )
    msgid = next_msgid(ctx.conn)
    status = _pick(ctx.cfg["notice_failure_rates"], "success")
    item = {"TemplateId": template["template_id"], "MsgID": msgid, "ErrorCode": 0 if status == "success" else 10001,
            "ErrorStatus": status}  # fmt: skip
    ctx.events.append(("subscribe_msg_sent_event", openid, {"SubscribeMsgSentEvent": {"List": [item]}}))
    return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


@route("/wxaapi/newtmpl/getcategory")
def categories(ctx: Ctx) -> dict[str, Any]:
    return {**OK, "data": CATEGORIES}


@route("/wxaapi/newtmpl/getpubtemplatetitles")
def library_titles(ctx: Ctx) -> dict[str, Any]:
    try:
        ids = {int(i) for i in ctx.query.get("ids", "").split(",") if i.strip()}
        start, limit = int(ctx.query.get("start", 0)), int(ctx.query.get("limit", 30))
    except ValueError:
        raise _error(47003) from None
    if not ids or limit < 1 or limit > 30 or start < 0:
        raise _error(47003)
    titles = [{"tid": int(tid), "title": t[0], "type": t[1], "categoryId": str(t[2])}
              for tid, t in LIBRARY.items() if t[2] in ids]  # fmt: skip
    return {**OK, "count": len(titles), "data": titles[start : start + limit]}


@route("/wxaapi/newtmpl/getpubtemplatekeywords")
def library_keywords(ctx: Ctx) -> dict[str, Any]:
    title = LIBRARY.get(str(ctx.query.get("tid", "")))
    if title is None:
        raise _error(200014)
    data = [{"kid": kid, "name": name, "example": example, "rule": rule} for kid, name, rule, example in title[3]]
    return {**OK, "count": len(data), "data": data}


@route("/wxaapi/newtmpl/addtemplate")
def template_add(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    title = LIBRARY.get(str(body.get("tid", "")))
    if title is None:
        raise _error(200014)
    kids = body.get("kidList")
    known = {kid: (name, rule, example) for kid, name, rule, example in title[3]}
    if (
        not isinstance(kids, list)
        or not 2 <= len(kids) <= 5
        or len(set(map(str, kids))) != len(kids)
        or not all(isinstance(k, int) and k in known for k in kids)
    ):
        raise _error(200020)
    scene = body.get("sceneDesc", "")
    if not isinstance(scene, str) or len(scene) > 15:
        raise _error(200021)
    template_id = secrets.token_urlsafe(32)[:43]
    keys = [(f"{known[k][1]}{k}", known[k]) for k in kids]
    template = {
        "template_id": template_id,
        "title": title[0],
        "type": title[1],
        "content": "\n".join(f"{name}:{{{{{key}.DATA}}}}" for key, (name, _rule, _ex) in keys),
        "example": "\n".join(f"{name}:{example}" for _key, (name, _rule, example) in keys),
        "rules": {key: rule for key, (_name, rule, _ex) in keys},
    }
    ctx.conn.execute(
        "INSERT INTO notice_templates (template_id, tid, data) VALUES (?, ?, ?)",
        (template_id, str(body["tid"]), json.dumps(template, ensure_ascii=False)),
    )
    return {**OK, "priTmplId": template_id}


@route("/wxaapi/newtmpl/gettemplate")
def templates(ctx: Ctx) -> dict[str, Any]:
    rows = ctx.conn.execute("SELECT data FROM notice_templates ORDER BY rowid").fetchall()
    data = [{"priTmplId": t["template_id"], "title": t["title"], "content": t["content"], "example": t["example"],
             "type": t["type"]} for t in (json.loads(r[0]) for r in rows)]  # fmt: skip
    return {**OK, "data": data}


@route("/wxaapi/newtmpl/deltemplate")
def template_delete(ctx: Ctx) -> dict[str, Any]:
    template_id = ctx.json().get("priTmplId")
    if _template(ctx.conn, template_id) is None:
        raise WeChatError(40037)
    ctx.conn.execute("DELETE FROM notice_templates WHERE template_id = ?", (template_id,))
    return dict(OK)


# --- people's decisions (the control API) -------------------------------------------------------------------------


def decide(conn: sqlite3.Connection, openid: str, payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Record what a person decided about notice templates and return the events WeChat posts about it:
    ``{"accept": [ids], "reject": [ids], "popup_scene": 2}`` is one popup (each acceptance of a one-time template
    allows one more notice); ``{"withdraw": [ids]}`` is a later rejection in WeChat's settings."""
    if not isinstance(payload, dict):
        raise ValueError("body must be an object")
    _user_row(conn, openid)
    accept, reject, withdraw = (list(payload.get(k) or []) for k in ("accept", "reject", "withdraw"))
    for template_id in accept + reject + withdraw:
        if not isinstance(template_id, str) or not template_id:
            raise ValueError("template ids are strings")
    events: list[tuple[str, dict[str, Any]]] = []
    if accept or reject:
        scene = str(payload.get("popup_scene", 2))
        for template_id in accept:
            conn.execute(
                "INSERT INTO notice_consents (openid, template_id, accepted, credits) VALUES (?, ?, 1, 1) "
                "ON CONFLICT (openid, template_id) DO UPDATE SET accepted = 1, credits = credits + 1",
                (openid, template_id),
            )
        for template_id in reject:
            conn.execute(
                "INSERT INTO notice_consents (openid, template_id, accepted, credits) VALUES (?, ?, 0, 0) "
                "ON CONFLICT (openid, template_id) DO UPDATE SET accepted = 0, credits = 0",
                (openid, template_id),
            )
        items = [{"TemplateId": t, "SubscribeStatusString": "accept", "PopupScene": scene} for t in accept]
        items += [{"TemplateId": t, "SubscribeStatusString": "reject", "PopupScene": scene} for t in reject]
        events.append(("subscribe_msg_popup_event", {"SubscribeMsgPopupEvent": {"List": items}}))
    if withdraw:
        for template_id in withdraw:
            conn.execute(
                "UPDATE notice_consents SET accepted = 0, credits = 0 WHERE openid = ? AND template_id = ?",
                (openid, template_id),
            )
        items = [{"TemplateId": t, "SubscribeStatusString": "reject"} for t in withdraw]
        events.append(("subscribe_msg_change_event", {"SubscribeMsgChangeEvent": {"List": items}}))
    return events


def consents(conn: sqlite3.Connection, openid: str) -> dict[str, dict[str, int]]:
    rows = conn.execute("SELECT template_id, accepted, credits FROM notice_consents WHERE openid = ?", (openid,))
    return {t: {"accepted": a, "credits": c} for t, a, c in rows}
