"""WeChat's API as the fake serves it: one handler per path, WeChat's request and response shapes.

A handler gets a :class:`Ctx` (an open write transaction, the config, the parsed request) and returns the JSON
body, or raises :class:`WeChatError`. Job-finish events to post after the commit are appended to ``ctx.events``.
"""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .state import RESERVED_TAGS, next_counter, next_msgid

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40023: "invalid sub button size",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40032: "invalid openid list size",
    40092: "invalid remark name",
    40037: "invalid template_id",
    40053: "invalid action info",
    40055: "invalid button url domain",
    40125: "invalid appsecret",
    40130: "invalid openid list size, at least two openid",
    41001: "access_token missing",
    42001: "access_token expired",
    43002: "require POST method",
    43004: "require subscribe",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45028: "has no masssend quota",
    45047: "out of response count limit",
    45056: "too many tags now, no need to add new",
    45057: "can't delete the tag that has too many fans",
    45058: "can't modify sys tag",
    45059: "too many tag now",
    45065: "clientmsgid exist",
    45157: "invalid tag name",
    45158: "tag name too long",
    45159: "invalid tag id",
    46003: "menu no exist",
    47001: "data format error",
    48001: "api unauthorized",
}

MASS_PATHS = ("/cgi-bin/message/mass/send", "/cgi-bin/message/mass/sendall")
MASS_MSGTYPES = {"mpnews", "text", "voice", "image", "mpvideo", "wxcard"}
CUSTOM_MSGTYPES = {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu", "wxcard",
                   "miniprogrampage"}  # fmt: skip
BUTTON_TYPES = {"click", "view", "miniprogram", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
                "pic_photo_or_album", "pic_weixin", "location_select", "media_id", "view_limited", "article_id",
                "article_view_limited"}  # fmt: skip
SUBSCRIBE_SCENES = ["ADD_SCENE_SEARCH", "ADD_SCENE_QR_CODE", "ADD_SCENE_PROFILE_CARD",
                    "ADD_SCENE_ACCOUNT_MIGRATION", "ADD_SCENE_PROFILE_LINK", "ADD_SCENE_PROFILE_ITEM",
                    "ADD_SCENE_PAID", "ADD_SCENE_OTHERS"]  # fmt: skip
MASS_JOB_FROM = "oFakeWeChatMassJobSystem0000"


def rid() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def error_body(errcode: int, errmsg: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": f"{errmsg or ERRMSG.get(errcode, 'error')} rid: {rid()}", **extra}


class WeChatError(Exception):
    def __init__(self, errcode: int, errmsg: str | None = None, **extra: Any) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.body = error_body(errcode, errmsg, **extra)


@dataclass
class Ctx:
    conn: sqlite3.Connection
    cfg: dict[str, Any]
    method: str
    path: str
    query: dict[str, str]
    raw: bytes
    content_type: str = ""
    now: float = field(default_factory=time.time)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _json: Any = None

    def json(self) -> dict[str, Any]:
        if self._json is None:
            if self.method != "POST":
                raise WeChatError(43002)
            if not self.raw.strip():
                raise WeChatError(44002)
            try:
                self._json = json.loads(self.raw)
            except (ValueError, UnicodeDecodeError):
                raise WeChatError(47001) from None
            if not isinstance(self._json, dict):
                raise WeChatError(47001)
        return self._json


OK = {"errcode": 0, "errmsg": "ok"}
ROUTES: dict[str, Callable[[Ctx], dict[str, Any]]] = {}
NO_TOKEN_PATHS = {"/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/showqrcode", "/sns/oauth2/access_token"}


def route(path: str):
    def register(fn):
        ROUTES[path] = fn
        return fn

    return register


# --- access tokens ----------------------------------------------------------------------------------------------


def _new_token(ctx: Ctx, kind: str) -> str:
    token = secrets.token_urlsafe(96)
    grace = float(ctx.cfg["token_grace"])
    ctx.conn.execute(
        "UPDATE tokens SET invalid_after = ? WHERE kind = ? AND (invalid_after IS NULL OR invalid_after > ?)",
        (ctx.now + grace, kind, ctx.now + grace),
    )
    ctx.conn.execute(
        "INSERT INTO tokens (token, kind, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token, kind, ctx.now, ctx.now + float(ctx.cfg["token_ttl"])),
    )
    return token


def _check_credentials(ctx: Ctx, grant_type: Any, appid: Any, secret: Any) -> None:
    if grant_type != "client_credential":
        raise WeChatError(40002)
    if appid != ctx.cfg["appid"]:
        raise WeChatError(40013)
    if secret != ctx.cfg["secret"]:
        raise WeChatError(40125)


@route("/cgi-bin/token")
def token(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    _check_credentials(ctx, q.get("grant_type"), q.get("appid"), q.get("secret"))
    return {"access_token": _new_token(ctx, "token"), "expires_in": int(ctx.cfg["token_ttl"])}


@route("/cgi-bin/stable_token")
def stable_token(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    _check_credentials(ctx, body.get("grant_type"), body.get("appid"), body.get("secret"))
    force = body.get("force_refresh", False) in (True, 1, "true")
    if not force:
        # Normal mode: the current token while it is valid; a new one in its last minutes (WeChat: 5 minutes).
        window = min(float(ctx.cfg["token_grace"]), float(ctx.cfg["token_ttl"]) / 2)
        row = ctx.conn.execute(
            "SELECT token, expires_at FROM tokens WHERE kind = 'stable' AND invalid_after IS NULL "
            "ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        if row and row[1] - ctx.now > window:
            return {"access_token": row[0], "expires_in": int(row[1] - ctx.now)}
    return {"access_token": _new_token(ctx, "stable"), "expires_in": int(ctx.cfg["token_ttl"])}


def check_access_token(conn: sqlite3.Connection, token: str | None, now: float) -> None:
    if not token:
        raise WeChatError(41001)
    row = conn.execute("SELECT expires_at, invalid_after FROM tokens WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise WeChatError(40001)
    expires_at, invalid_after = row
    if invalid_after is not None and now >= invalid_after:
        raise WeChatError(40001)
    if now >= expires_at:
        raise WeChatError(42001)


# --- users ----------------------------------------------------------------------------------------------------


def make_openid(rng: random.Random | None = None, prefix: str = "o") -> str:
    rng = rng or random.SystemRandom()
    alphabet = string.ascii_letters + string.digits + "-_"
    return prefix + "".join(rng.choice(alphabet) for _ in range(28 - len(prefix)))


def _user_row(conn: sqlite3.Connection, openid: Any) -> dict[str, Any]:
    if not isinstance(openid, str) or not openid:
        raise WeChatError(40003)
    row = conn.execute("SELECT data FROM users WHERE openid = ?", (openid,)).fetchone()
    if row is None:
        raise WeChatError(40003)
    return json.loads(row[0])


def _tag_ids(conn: sqlite3.Connection, openids: list[str]) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {o: [] for o in openids}
    for start in range(0, len(openids), 500):
        chunk = openids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for openid, tagid in conn.execute(
            f"SELECT openid, tagid FROM user_tags WHERE openid IN ({marks}) ORDER BY tagid",  # noqa: S608
            chunk,
        ):
            result[openid].append(tagid)
    return result


def user_info_shape(user: dict[str, Any], tagids: list[int]) -> dict[str, Any]:
    if not user.get("subscribe"):
        info: dict[str, Any] = {"subscribe": 0, "openid": user["openid"]}
        if user.get("unionid"):
            info["unionid"] = user["unionid"]
        return info
    info = {
        "subscribe": 1,
        "openid": user["openid"],
        "language": user.get("language", "zh_CN"),
        "subscribe_time": int(user.get("subscribe_time", 0)),
    }
    if user.get("unionid"):
        info["unionid"] = user["unionid"]
    for key in ("nickname", "headimgurl"):  # no longer returned by WeChat unless seeded explicitly
        if user.get(key):
            info[key] = user[key]
    info.update(
        remark=user.get("remark", ""),
        groupid=0,
        tagid_list=tagids,
        subscribe_scene=user.get("subscribe_scene", "ADD_SCENE_OTHERS"),
        qr_scene=int(user.get("qr_scene", 0)),
        qr_scene_str=user.get("qr_scene_str", ""),
    )
    return info


@route("/cgi-bin/user/info")
def user_info(ctx: Ctx) -> dict[str, Any]:
    user = _user_row(ctx.conn, ctx.query.get("openid"))
    return user_info_shape(user, _tag_ids(ctx.conn, [user["openid"]])[user["openid"]])


@route("/cgi-bin/user/info/batchget")
def user_info_batchget(ctx: Ctx) -> dict[str, Any]:
    items = ctx.json().get("user_list")
    if not isinstance(items, list) or not items or len(items) > 100:
        raise WeChatError(40032)
    openids = []
    for item in items:
        if not isinstance(item, dict):
            raise WeChatError(47001)
        openids.append(item.get("openid"))
    users = [_user_row(ctx.conn, o) for o in openids]
    tags = _tag_ids(ctx.conn, [u["openid"] for u in users])
    return {"user_info_list": [user_info_shape(u, tags[u["openid"]]) for u in users]}


# WeChat's documented limit is "less than 30 bytes"; in practice it refuses more than 30 bytes of UTF-8 (10 Chinese
# characters), with 40092.
REMARK_MAX_BYTES = 30


@route("/cgi-bin/user/info/updateremark")
def user_updateremark(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    user = _user_row(ctx.conn, body.get("openid"))
    remark = body.get("remark")
    if not isinstance(remark, str) or len(remark.encode("utf-8")) > REMARK_MAX_BYTES:
        raise WeChatError(40092)
    if not user.get("subscribe", 1):
        raise WeChatError(43004)
    user["remark"] = remark
    ctx.conn.execute("UPDATE users SET data = ? WHERE openid = ?", (json.dumps(user), user["openid"]))
    return dict(OK)


@route("/cgi-bin/user/get")
def user_get(ctx: Ctx) -> dict[str, Any]:
    page = int(ctx.cfg["user_get_page_size"]) or 10000
    after = 0
    next_openid = ctx.query.get("next_openid") or ""
    if next_openid:
        row = ctx.conn.execute("SELECT seq FROM users WHERE openid = ?", (next_openid,)).fetchone()
        if row is None:
            raise WeChatError(40003)
        after = row[0]
    total = ctx.conn.execute("SELECT COUNT(*) FROM users WHERE subscribe = 1").fetchone()[0]
    openids = [
        r[0]
        for r in ctx.conn.execute(
            "SELECT openid FROM users WHERE subscribe = 1 AND seq > ? ORDER BY seq LIMIT ?", (after, page)
        )
    ]
    if not openids:
        return {"total": total, "count": 0, "next_openid": ""}
    return {"total": total, "count": len(openids), "data": {"openid": openids}, "next_openid": openids[-1]}


# --- tags -----------------------------------------------------------------------------------------------------


def _tag_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WeChatError(45157)
    if len(value.encode()) > 30:
        raise WeChatError(45158)
    return value


def _tag_id(ctx: Ctx, value: Any, *, writable: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise WeChatError(45159)
    tag_id = int(value)
    if writable and tag_id in (0, 1, *RESERVED_TAGS):
        raise WeChatError(45058)
    if ctx.conn.execute("SELECT 1 FROM tags WHERE id = ?", (tag_id,)).fetchone() is None:
        raise WeChatError(45159)
    return tag_id


def _tag_body(ctx: Ctx) -> dict[str, Any]:
    tag = ctx.json().get("tag")
    if not isinstance(tag, dict):
        raise WeChatError(47001)
    return tag


@route("/cgi-bin/tags/create")
def tags_create(ctx: Ctx) -> dict[str, Any]:
    name = _tag_name(_tag_body(ctx).get("name"))
    if ctx.conn.execute("SELECT COUNT(*) FROM tags").fetchone()[0] >= 100:
        raise WeChatError(45056)
    if ctx.conn.execute("SELECT 1 FROM tags WHERE name = ?", (name,)).fetchone():
        raise WeChatError(45157, "invalid tag name, tag name already exists")
    tag_id = next_counter(ctx.conn, "tag_id")
    ctx.conn.execute("INSERT INTO tags (id, name) VALUES (?, ?)", (tag_id, name))
    return {"tag": {"id": tag_id, "name": name}}


@route("/cgi-bin/tags/get")
def tags_get(ctx: Ctx) -> dict[str, Any]:
    counts = dict(ctx.conn.execute("SELECT tagid, COUNT(*) FROM user_tags GROUP BY tagid").fetchall())
    rows = ctx.conn.execute("SELECT id, name FROM tags ORDER BY id").fetchall()
    return {"tags": [{"id": i, "name": n, "count": counts.get(i, 0)} for i, n in rows]}


@route("/cgi-bin/tags/update")
def tags_update(ctx: Ctx) -> dict[str, Any]:
    tag = _tag_body(ctx)
    tag_id = _tag_id(ctx, tag.get("id"), writable=True)
    name = _tag_name(tag.get("name"))
    if ctx.conn.execute("SELECT 1 FROM tags WHERE name = ? AND id != ?", (name, tag_id)).fetchone():
        raise WeChatError(45157, "invalid tag name, tag name already exists")
    ctx.conn.execute("UPDATE tags SET name = ? WHERE id = ?", (name, tag_id))
    return dict(OK)


@route("/cgi-bin/tags/delete")
def tags_delete(ctx: Ctx) -> dict[str, Any]:
    tag_id = _tag_id(ctx, _tag_body(ctx).get("id"), writable=True)
    if ctx.conn.execute("SELECT COUNT(*) FROM user_tags WHERE tagid = ?", (tag_id,)).fetchone()[0] > 100000:
        raise WeChatError(45057)
    ctx.conn.execute("DELETE FROM user_tags WHERE tagid = ?", (tag_id,))
    ctx.conn.execute("DELETE FROM tags WHERE id = ?", (tag_id,))
    return dict(OK)


def _openid_list(ctx: Ctx, key: str = "openid_list", limit: int = 50) -> list[str]:
    openids = ctx.json().get(key)
    if not isinstance(openids, list) or not openids or len(openids) > limit:
        raise WeChatError(40032)
    for openid in openids:
        _user_row(ctx.conn, openid)
    return openids


@route("/cgi-bin/tags/members/batchtagging")
def tags_batchtagging(ctx: Ctx) -> dict[str, Any]:
    tag_id = _tag_id(ctx, ctx.json().get("tagid"))
    openids = _openid_list(ctx)
    current = _tag_ids(ctx.conn, openids)
    for openid in openids:
        if tag_id not in current[openid] and len(current[openid]) >= 20:
            raise WeChatError(45059)
    ctx.conn.executemany(
        "INSERT OR IGNORE INTO user_tags (tagid, openid) VALUES (?, ?)", [(tag_id, o) for o in openids]
    )
    return dict(OK)


@route("/cgi-bin/tags/members/batchuntagging")
def tags_batchuntagging(ctx: Ctx) -> dict[str, Any]:
    tag_id = _tag_id(ctx, ctx.json().get("tagid"))
    openids = _openid_list(ctx)
    ctx.conn.executemany("DELETE FROM user_tags WHERE tagid = ? AND openid = ?", [(tag_id, o) for o in openids])
    return dict(OK)


@route("/cgi-bin/tags/getidlist")
def tags_getidlist(ctx: Ctx) -> dict[str, Any]:
    openid = ctx.json().get("openid")
    _user_row(ctx.conn, openid)
    return {"tagid_list": _tag_ids(ctx.conn, [openid])[openid]}


@route("/cgi-bin/user/tag/get")
def user_tag_get(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    tag_id = _tag_id(ctx, body.get("tagid"))
    after = body.get("next_openid") or ""
    rows = [
        r[0]
        for r in ctx.conn.execute(
            "SELECT openid FROM user_tags WHERE tagid = ? AND openid > ? ORDER BY openid LIMIT 10000", (tag_id, after)
        )
    ]
    if not rows:
        return {"count": 0, "next_openid": ""}
    return {"count": len(rows), "data": {"openid": rows}, "next_openid": rows[-1]}


# --- QR codes -------------------------------------------------------------------------------------------------


@route("/cgi-bin/qrcode/create")
def qrcode_create(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    action = body.get("action_name")
    scene = (body.get("action_info") or {}).get("scene") if isinstance(body.get("action_info"), dict) else None
    if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE") or not isinstance(
        scene, dict
    ):
        raise WeChatError(40053)
    permanent = action.startswith("QR_LIMIT")
    if action.endswith("STR_SCENE"):
        value = scene.get("scene_str")
        if not isinstance(value, str) or not 1 <= len(value) <= 64:
            raise WeChatError(40053, "invalid action info, scene_str must be 1 to 64 characters")
        scene_key = "str:" + value
    else:
        value = scene.get("scene_id")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise WeChatError(40053, "invalid action info, scene_id must be a positive integer")
        if (permanent and value > 100000) or value > 2**32 - 1:
            raise WeChatError(40053, "invalid action info, scene_id out of range")
        scene_key = f"id:{value}"
    if permanent:
        existing = ctx.conn.execute(
            "SELECT data FROM qrcodes WHERE action_name = ? AND scene = ?", (action, scene_key)
        ).fetchone()
        if existing:
            data = json.loads(existing[0])
            return {"ticket": data["ticket"], "url": data["url"]}
        expire = None
    else:
        expire = body.get("expire_seconds", 60)
        if isinstance(expire, bool) or not isinstance(expire, int) or expire <= 0:
            raise WeChatError(40053, "invalid action info, bad expire_seconds")
        expire = min(expire, 2592000)
    ticket = "gQ" + secrets.token_urlsafe(60)
    url = "http://weixin.qq.com/q/" + secrets.token_urlsafe(16)
    data = {"ticket": ticket, "url": url, "action_name": action, "scene": scene, "created_at": ctx.now}
    if expire:
        data["expire_seconds"] = expire
        data["expires_at"] = ctx.now + expire
    ctx.conn.execute(
        "INSERT INTO qrcodes (ticket, action_name, scene, data) VALUES (?, ?, ?, ?)",
        (ticket, action, scene_key, json.dumps(data)),
    )
    if expire:
        return {"ticket": ticket, "expire_seconds": expire, "url": url}
    return {"ticket": ticket, "url": url}


def qrcode_for_ticket(conn: sqlite3.Connection, ticket: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT data FROM qrcodes WHERE ticket = ?", (ticket,)).fetchone()
    return json.loads(row[0]) if row else None


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


# --- menu -----------------------------------------------------------------------------------------------------


def _validate_button(button: Any, *, sub: bool) -> None:
    if not isinstance(button, dict):
        raise WeChatError(47001)
    name = button.get("name")
    if not isinstance(name, str) or not name or len(name.encode()) > (60 if sub else 16):
        raise WeChatError(40025 if sub else 40018)
    if not sub and "sub_button" in button and "type" not in button:
        subs = button["sub_button"]
        if not isinstance(subs, list) or not 1 <= len(subs) <= 5:
            raise WeChatError(40023)
        for child in subs:
            _validate_button(child, sub=True)
        return
    kind = button.get("type")
    if kind not in BUTTON_TYPES:
        raise WeChatError(40017)
    if kind in ("view", "miniprogram"):
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 1024:
            raise WeChatError(40027 if sub else 40055)
    elif kind in ("media_id", "view_limited"):
        if not button.get("media_id"):
            raise WeChatError(40007)
    elif kind in ("article_id", "article_view_limited"):
        if not button.get("article_id"):
            raise WeChatError(40007)
    else:
        key = button.get("key")
        if not isinstance(key, str) or not key or len(key.encode()) > 128:
            raise WeChatError(40026 if sub else 40019)


@route("/cgi-bin/menu/create")
def menu_create(ctx: Ctx) -> dict[str, Any]:
    buttons = ctx.json().get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise WeChatError(40016)
    for button in buttons:
        _validate_button(button, sub=False)
    ctx.conn.execute("INSERT OR REPLACE INTO menu (id, data) VALUES (1, ?)", (json.dumps({"button": buttons}),))
    return dict(OK)


@route("/cgi-bin/menu/get")
def menu_get(ctx: Ctx) -> dict[str, Any]:
    row = ctx.conn.execute("SELECT data FROM menu WHERE id = 1").fetchone()
    if row is None:
        raise WeChatError(46003)
    return {"menu": json.loads(row[0])}


@route("/cgi-bin/menu/delete")
def menu_delete(ctx: Ctx) -> dict[str, Any]:
    ctx.conn.execute("DELETE FROM menu")
    return dict(OK)
