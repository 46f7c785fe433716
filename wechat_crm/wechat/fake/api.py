"""The handler registry of the fake's WeChat API, which the handler modules build on.

A handler gets a :class:`Ctx` (an open write transaction, the config, the parsed request) and returns the JSON
body, or raises :class:`WeChatError`. Job-finish events to post after the commit are appended to ``ctx.events``.
Handlers register with :func:`route`, one per path, in the modules of their concern: :mod:`.tokens`,
:mod:`.users` (users and tags), :mod:`.sending` (template, customer-service and mass sends), :mod:`.qrcodes`,
:mod:`.menu`, :mod:`.materials`, :mod:`.publishing`, :mod:`.notices`, :mod:`.datacube`, :mod:`.oauth`.
:mod:`.calls` runs them.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
