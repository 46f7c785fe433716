"""WeChat's web authorisation (网页授权) as the fake serves it: the authorise redirect and the code exchange.

* ``GET /connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=snsapi_base|snsapi_userinfo&state=``
  (WeChat's ``#wechat_redirect`` fragment never reaches a server). WeChat knows who is in its browser; the fake is
  told by the caller, in this order: the query parameter ``fake_openid``, or the cookie ``fake_wechat_openid``
  (what a test, the simulator or a person trying the demo in a desktop browser sets). Without either it answers
  WeChat's page for a browser that is not WeChat's (200, "请在微信客户端打开链接"), and without a valid appid, scope or
  redirect_uri WeChat's error page (400 with the error's number, e.g. 10003 redirect_uri, 10005 scope, 10016
  appid). Otherwise it issues a code (single use, valid ``oauth_code_ttl`` seconds, WeChat: 5 minutes) and answers
  302 to ``redirect_uri?code=CODE&state=STATE``. The openid need not be a known user: WeChat gives non-followers
  an openid too. Each authorise is recorded in the call log (path ``/connect/oauth2/authorize``, errcode 0 or the
  page's error number).
* ``GET /sns/oauth2/access_token?appid=&secret=&code=&grant_type=authorization_code`` (no access token): WeChat's
  answer ``{access_token, expires_in, refresh_token, openid, scope}`` (and ``unionid`` for snsapi_userinfo when the
  user has one); 40029 for an unknown or expired code, 40163 for a code already used, 40002 / 40013 / 40125 for a
  wrong grant type, appid or secret.
"""

from __future__ import annotations

import json
import secrets
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from .api import Ctx, WeChatError, route

AUTHORIZE_PATH = "/connect/oauth2/authorize"
SCOPES = ("snsapi_base", "snsapi_userinfo")
COOKIE = "fake_wechat_openid"
NOT_IN_WECHAT = "请在微信客户端打开链接"
PAGE_ERRORS = {10003: "redirect_uri参数错误", 10004: "此公众号被封禁", 10005: "此公众号并没有这些scope的权限",
               10006: "必须关注此测试号", 10016: "appid参数错误"}  # fmt: skip
ERRMSG = {40029: "invalid code", 40163: "code been used"}


def _page(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    head = "<!doctype html><html><head><meta charset='utf-8'><title>微信</title></head>"
    body = f"{head}<body><p>{text}</p></body></html>"
    return status, [("Content-Type", "text/html; charset=utf-8")], body.encode()


def browser_openid(query: dict[str, str], cookie_header: str) -> str:
    """Who is in the browser: ``fake_openid`` in the query, else the ``fake_wechat_openid`` cookie, else ""."""
    if query.get("fake_openid"):
        return query["fake_openid"]
    cookie = SimpleCookie()
    try:
        cookie.load(cookie_header or "")
    except Exception:  # a malformed Cookie header: nobody
        return ""
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else ""


def authorize(store, cfg: dict[str, Any], query: dict[str, str], cookie_header: str):
    """The authorise page: a 302 back to the redirect_uri with a fresh code, or WeChat's page for an error."""
    now = time.time()
    redirect_uri = query.get("redirect_uri", "")
    errcode = 0
    if query.get("appid") != cfg["appid"]:
        errcode = 10016
    elif query.get("scope") not in SCOPES or query.get("response_type") != "code":
        errcode = 10005
    elif urlsplit(redirect_uri).scheme not in ("http", "https") or not urlsplit(redirect_uri).netloc:
        errcode = 10003
    openid = browser_openid(query, cookie_header) if not errcode else ""
    with store.write() as conn:
        code = ""
        if not errcode and openid:
            code = secrets.token_urlsafe(24).replace("-", "A").replace("_", "B")
            conn.execute(
                "INSERT INTO oauth_codes (code, openid, scope, created_at) VALUES (?, ?, ?, ?)",
                (code, openid, query["scope"], now),
            )
        recorded = {k: v for k, v in query.items() if k != "fake_openid"}
        conn.execute(
            "INSERT INTO calls (at, method, path, query, body, status, errcode, fault, pid) "
            "VALUES (?, 'GET', ?, ?, ?, ?, ?, NULL, 0)",
            (now, AUTHORIZE_PATH, json.dumps(recorded), json.dumps({"openid": openid}) if openid else "",
             400 if errcode else (302 if code else 200), errcode),
        )  # fmt: skip
    if errcode:
        return _page(400, f"{PAGE_ERRORS[errcode]} ({errcode})")
    if not code:
        return _page(200, NOT_IN_WECHAT)
    back = urlencode({"code": code, "state": query.get("state", "")})
    location = redirect_uri + ("&" if "?" in redirect_uri else "?") + back
    return 302, [("Location", location), ("Content-Type", "text/html; charset=utf-8")], b""


@route("/sns/oauth2/access_token")
def oauth2_access_token(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    if q.get("grant_type") != "authorization_code":
        raise WeChatError(40002)
    if q.get("appid") != ctx.cfg["appid"]:
        raise WeChatError(40013)
    if q.get("secret") != ctx.cfg["secret"]:
        raise WeChatError(40125)
    row = ctx.conn.execute(
        "SELECT openid, scope, created_at, used_at FROM oauth_codes WHERE code = ?", (q.get("code") or "",)
    ).fetchone()
    if row is None or ctx.now - row[2] > float(ctx.cfg["oauth_code_ttl"]):
        raise WeChatError(40029, ERRMSG[40029])
    openid, scope, _created, used_at = row
    if used_at is not None:
        raise WeChatError(40163, ERRMSG[40163])
    ctx.conn.execute("UPDATE oauth_codes SET used_at = ? WHERE code = ?", (ctx.now, q["code"]))
    answer: dict[str, Any] = {
        "access_token": secrets.token_urlsafe(64),
        "expires_in": 7200,
        "refresh_token": secrets.token_urlsafe(64),
        "openid": openid,
        "scope": scope,
    }
    if scope == "snsapi_userinfo":
        user = ctx.conn.execute("SELECT data FROM users WHERE openid = ?", (openid,)).fetchone()
        unionid = json.loads(user[0]).get("unionid") if user else None
        if unionid:
            answer["unionid"] = unionid
    return answer
