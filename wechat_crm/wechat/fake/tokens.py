"""Access tokens as the fake issues and checks them: ``/cgi-bin/token``, ``/cgi-bin/stable_token``, and the
check every other call goes through (:func:`check_access_token`)."""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from .api import Ctx, WeChatError, route


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
