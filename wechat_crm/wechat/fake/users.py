"""Users and tags as the fake serves them: ``/cgi-bin/user/*`` (info, batchget, remarks, the follower list) and
``/cgi-bin/tags/*`` (create, list, rename, delete, tag and untag people), with WeChat's limits and error codes."""

from __future__ import annotations

import json
import random
import sqlite3
import string
from typing import Any

from .api import OK, Ctx, WeChatError, route
from .state import RESERVED_TAGS, next_counter

SUBSCRIBE_SCENES = ["ADD_SCENE_SEARCH", "ADD_SCENE_QR_CODE", "ADD_SCENE_PROFILE_CARD",
                    "ADD_SCENE_ACCOUNT_MIGRATION", "ADD_SCENE_PROFILE_LINK", "ADD_SCENE_PROFILE_ITEM",
                    "ADD_SCENE_PAID", "ADD_SCENE_OTHERS"]  # fmt: skip

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
