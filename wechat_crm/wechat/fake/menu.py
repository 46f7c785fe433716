"""The custom menu as the fake keeps it: ``/cgi-bin/menu/create``, ``/get`` and ``/delete``, with WeChat's rules
for buttons and their error codes."""

from __future__ import annotations

import json
from typing import Any

from .api import OK, Ctx, WeChatError, route

BUTTON_TYPES = {"click", "view", "miniprogram", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
                "pic_photo_or_album", "pic_weixin", "location_select", "media_id", "view_limited", "article_id",
                "article_view_limited"}  # fmt: skip

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
