"""QR codes as the fake issues them: ``/cgi-bin/qrcode/create`` (temporary and permanent, numeric and string
scenes). Their images are served by ``/cgi-bin/showqrcode`` (see :mod:`.calls`)."""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

from .api import Ctx, WeChatError, route


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
