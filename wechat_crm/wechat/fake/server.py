"""The fake WeChat server: a lean WSGI app (no Django in the request path) and two ways to run it.

* :func:`serve` runs it under gunicorn with ``gthread`` workers (HTTP/1.1 keep-alive); the workers share the state
  through :class:`~.state.Store` (one SQLite file in WAL mode). ``manage.py fake_wechat`` calls it.
* :func:`serve_in_thread` runs it in a background thread of the current process, for quick unit tests.

WeChat's API lives under ``/cgi-bin/`` (see :mod:`.api`); the control API for tests, the demo and benchmarks lives
under ``/_fake/`` (see :class:`FakeWeChatApp` for the list).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from . import api, datacube, notices, oauth, publishing  # noqa: F401 - they register their routes
from .api import Ctx, WeChatError
from .events import EventSender
from .state import ConfigError, Store

JSON = [("Content-Type", "application/json; charset=utf-8")]


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class _Drop(Exception):
    """Close the connection without an answer (an injected timeout in "drop" mode)."""


class FakeWeChatApp:
    """WSGI app. Control API:

    ``GET /_fake/health``; ``GET|POST /_fake/config`` (POST merges keys); ``POST /_fake/reset`` (optional config);
    ``GET /_fake/calls`` (``path``, ``errcode``, ``since_id``, ``limit``, ``count_only=1``); ``DELETE /_fake/calls``;
    ``GET /_fake/users`` (``subscribe``, ``count_only``, ``limit``), ``POST /_fake/users`` (``{"users": [...]}``
    and/or ``{"generate": N}``), ``GET /_fake/users/<openid>``, ``POST /_fake/users/<openid>/subscribe|unsubscribe``;
    ``POST /_fake/tokens/expire`` and ``/_fake/tokens/invalidate``; ``GET /_fake/deliveries`` (``event``,
    ``count_only``); ``GET /_fake/menu``; ``GET /_fake/qrcodes``; ``POST /_fake/users/<openid>/notices``
    (``{"accept": [template ids], "reject": [...]}``: the person's answer in WeChat's popup, posted as
    subscribe_msg_popup_event; ``{"withdraw": [...]}``: a later rejection, posted as subscribe_msg_change_event) and
    ``GET /_fake/users/<openid>/notices`` (what WeChat holds: accepted and the one-time notices left, per template);
    ``POST /_fake/users/<openid>/interactions`` (``{"interactions": [callback fields]}``: what the person sent, which
    opens WeChat's customer-service window as window.py says) and ``GET`` of it (the person's window now).

    Besides the API, WeChat's web authorisation page ``/connect/oauth2/authorize`` (see :mod:`.oauth`).
    """

    def __init__(self, store: Store, *, log_calls: bool = True, event_threads: int = 4) -> None:
        self.store = store
        self.log_calls = log_calls
        self.events = EventSender(store, threads=event_threads)

    # --- WSGI entry ---------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            if path.startswith("/_fake/"):
                status, headers, body = self.control(method, path, query, raw)
            elif path == oauth.AUTHORIZE_PATH and method in ("GET", "HEAD"):
                cfg, _epoch = self.store.config()
                status, headers, body = oauth.authorize(self.store, cfg, query, environ.get("HTTP_COOKIE", ""))
            elif path.startswith(("/cgi-bin/", "/datacube/", "/wxaapi/", "/sns/")):
                status, headers, body = self.wechat(method, path, query, raw, environ.get("CONTENT_TYPE", ""))
            else:
                status, headers, body = 404, JSON, _dumps({"errcode": -1, "errmsg": "not found"})
        except _Drop:
            sock = environ.get("gunicorn.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            status, headers, body = 504, [*JSON, ("Connection", "close")], b""
        start_response(_status_line(status), [*headers, ("Content-Length", str(len(body)))])
        return [body]

    # --- WeChat's API -----------------------------------------------------------------------------------------
    def wechat(self, method: str, path: str, query: dict[str, str], raw: bytes, content_type: str = ""):
        started = time.time()
        cfg, epoch = self.store.config()
        if cfg["latency_ms"]:
            time.sleep(cfg["latency_ms"] / 1000)
        if path == "/cgi-bin/showqrcode":
            return self._showqrcode(query)
        if path == "/cgi-bin/media/get":
            return self._media_get(query)
        handler = api.ROUTES.get(path)
        late: tuple[float, str] | None = None
        status = 200
        with self.store.write() as conn:
            ctx = Ctx(conn=conn, cfg=cfg, method=method, path=path, query=query, raw=raw, content_type=content_type)
            fault = self._pick_fault(conn, cfg, path, raw)
            fault_name = None
            if fault and "status" in fault:
                status, fault_name = fault["status"], f"http_{fault['status']}"
                body: Any = f"<html><body>{_status_line(status)}</body></html>".encode()
                errcode = None
            else:
                if fault and "timeout" in fault:
                    seconds = fault["timeout"]
                    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                        seconds = cfg["timeout_seconds"]  # {"timeout": true} means "the configured timeout"
                    late = (float(seconds), fault.get("mode", cfg["timeout_mode"]))
                    fault_name = f"timeout_{late[1]}"
                body, errcode = self._handle(ctx, handler, fault)
                if fault and "errcode" in fault:
                    fault_name = f"errcode_{fault['errcode']}"
                if late and late[1] == "drop":
                    status = 0  # never answered, and never processed
                    conn.execute("ROLLBACK TO handler")
                conn.execute("RELEASE handler")
            self._record(conn, ctx, status, errcode, fault_name)
        if handler is not None and errcode == 0 and not (late and late[1] == "drop"):
            for event, openid, fields in ctx.events:
                if cfg["job_finish_events"] and cfg["callback_url"] and cfg.get("job_finish_before_answer"):
                    self.events.deliver_now(epoch, event, openid, fields)  # reported before the call is answered
                elif cfg["job_finish_events"] and cfg["callback_url"]:
                    self.events.enqueue(epoch, float(cfg["callback_delay"]), event, openid, fields)
        if self.log_calls:
            print(
                f"{datetime.now():%H:%M:%S} {method} {path} -> {status or 'dropped'} errcode={errcode} "
                f"{fault_name or ''} {int((time.time() - started) * 1000)}ms",
                flush=True,
            )
        if late:
            time.sleep(late[0])
            if late[1] == "drop":
                raise _Drop
        if isinstance(body, bytes):
            return status, [("Content-Type", "text/html")], body
        return status, JSON, _dumps(body)

    def _handle(self, ctx: Ctx, handler, fault: dict | None) -> tuple[dict[str, Any], int]:
        conn = ctx.conn
        conn.execute("SAVEPOINT handler")  # released by the caller
        try:
            if handler is None:
                raise WeChatError(48001, "api unauthorized")
            if ctx.path not in api.NO_TOKEN_PATHS:
                api.check_access_token(conn, ctx.query.get("access_token"), ctx.now)
            if fault and "errcode" in fault:
                raise WeChatError(int(fault["errcode"]))
            if ctx.path in ctx.cfg["denied_apis"]:
                raise WeChatError(48001)
            quota = ctx.cfg["quotas"].get(ctx.path)
            day_key = f"quota:{ctx.path}:{time.strftime('%Y%m%d')}"
            if quota is not None:
                used = conn.execute("SELECT value FROM counters WHERE name = ?", (day_key,)).fetchone()
                if used and used[0] >= quota:
                    raise WeChatError(45028 if ctx.path in api.MASS_PATHS else 45009)
            per_minute = ctx.cfg["minute_limits"].get(ctx.path)
            if per_minute is not None:
                minute_key = f"minute:{ctx.path}:{int(ctx.now // 60)}"
                if api.next_counter(conn, minute_key) > per_minute:
                    raise WeChatError(45011)
            body = handler(ctx)
            if quota is not None:
                api.next_counter(conn, day_key)
            return body, int(body.get("errcode", 0))
        except WeChatError as exc:
            conn.execute("ROLLBACK TO handler")
            ctx.events.clear()
            return exc.body, exc.errcode

    def _pick_fault(self, conn, cfg: dict[str, Any], path: str, raw: bytes) -> dict[str, Any] | None:
        rules: list[tuple[str | None, dict[str, Any]]] = [
            (f"fault:{i}", rule)
            for i, rule in enumerate(cfg["faults"])
            if _path_matches(rule.get("path"), path) and _touser_matches(rule.get("touser"), raw)
        ]
        if cfg["error_5xx_rate"]:
            rules.append((None, {"rate": cfg["error_5xx_rate"], "status": random.choice((500, 502, 503))}))
        if cfg["timeout_rate"]:
            rules.append(
                (None, {"rate": cfg["timeout_rate"], "timeout": cfg["timeout_seconds"], "mode": cfg["timeout_mode"]})
            )
        rules += [(None, {"rate": rate, "errcode": int(code)}) for code, rate in cfg["errcode_rates"].items()]
        for counter, rule in rules:
            if random.random() >= rule.get("rate", 1.0):
                continue
            if counter and "times" in rule:
                used = conn.execute("SELECT value FROM counters WHERE name = ?", (counter,)).fetchone()
                if used and used[0] >= rule["times"]:
                    continue
                api.next_counter(conn, counter)
            return rule
        return None

    def _record(self, conn, ctx: Ctx, status: int, errcode: int | None, fault: str | None) -> None:
        conn.execute(
            "INSERT INTO calls (at, method, path, query, body, status, errcode, fault, pid) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ctx.now,
                ctx.method,
                ctx.path,
                json.dumps(ctx.query),
                publishing.recorded_body(ctx),
                status,
                errcode,
                fault,
                os.getpid(),
            ),
        )

    def _showqrcode(self, query: dict[str, str]):
        import segno

        conn = self.store.connection()
        qrcode = api.qrcode_for_ticket(conn, query.get("ticket", ""))
        if qrcode is None:
            return 404, JSON, _dumps({"errcode": 40053, "errmsg": "invalid ticket"})
        import io

        buf = io.BytesIO()
        segno.make(qrcode["url"], error="m").save(buf, kind="png", scale=4)
        return 200, [("Content-Type", "image/png")], buf.getvalue()

    def _media_get(self, query: dict[str, str]):
        """A subscriber's image or voice (registered with POST /_fake/media), as WeChat serves temporary media."""
        row = (
            self.store.connection()
            .execute("SELECT content_type, data FROM inbound_media WHERE media_id = ?", (query.get("media_id", ""),))
            .fetchone()
        )
        if row is None:
            return 200, JSON, _dumps({"errcode": 40007, "errmsg": "invalid media_id"})
        return 200, [("Content-Type", row[0])], bytes(row[1])

    # --- control API -------------------------------------------------------------------------------------------
    def control(self, method: str, path: str, query: dict[str, str], raw: bytes):
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 400, JSON, _dumps({"error": "body must be JSON"})
        try:
            result = self._control(method, path, query, payload)
        except ConfigError as exc:
            return 400, JSON, _dumps({"error": str(exc)})
        if result is None:
            return 404, JSON, _dumps({"error": f"no control endpoint {method} {path}"})
        status, body = result
        return status, JSON, _dumps(body)

    def _control(self, method: str, path: str, query: dict[str, str], payload: Any):
        store = self.store
        conn = store.connection()
        if path == "/_fake/health":
            return 200, {"ok": True, "pid": os.getpid()}
        if path == "/_fake/config":
            if method == "POST":
                return 200, store.configure(payload)
            return 200, store.config()[0]
        if path == "/_fake/reset" and method == "POST":
            return 200, store.reset(payload or None)
        if path == "/_fake/calls":
            if method == "DELETE":
                with store.write() as c:
                    c.execute("DELETE FROM calls")
                return 200, {"ok": True}
            return 200, _calls(conn, query)
        if path == "/_fake/deliveries":
            where, args = ["1 = 1"], []
            if query.get("event"):
                where.append("event = ?")
                args.append(query["event"])
            sql_where = " AND ".join(where)
            count = conn.execute(f"SELECT COUNT(*) FROM deliveries WHERE {sql_where}", args).fetchone()[0]  # noqa: S608
            if query.get("count_only"):
                return 200, {"count": count}
            rows = conn.execute(
                f"SELECT id, at, event, msg_id, openid, attempts, http_status, ok, error FROM deliveries "  # noqa: S608
                f"WHERE {sql_where} ORDER BY id LIMIT ?",
                [*args, int(query.get("limit", 100000))],
            ).fetchall()
            keys = ("id", "at", "event", "msg_id", "openid", "attempts", "http_status", "ok", "error")
            return 200, {"count": count, "deliveries": [dict(zip(keys, r, strict=True)) for r in rows]}
        if path == "/_fake/users":
            if method == "POST":
                return 200, _add_users(store, payload)
            return 200, _list_users(conn, query)
        m = re.fullmatch(r"/_fake/users/([^/]+)/notices", path)
        if m:
            return self._notices(method, m.group(1), payload)
        m = re.fullmatch(r"/_fake/users/([^/]+)/interactions", path)
        if m:
            return self._interactions(method, m.group(1), payload)
        m = re.fullmatch(r"/_fake/users/([^/]+)(?:/(subscribe|unsubscribe))?", path)
        if m:
            openid, action = m.groups()
            if action and method == "POST":
                return _set_subscription(store, openid, action == "subscribe", payload)
            row = conn.execute("SELECT data FROM users WHERE openid = ?", (openid,)).fetchone()
            if row is None:
                return 404, {"error": "unknown openid"}
            user = json.loads(row[0])
            user["tagid_list"] = api._tag_ids(conn, [openid])[openid]
            return 200, user
        if path in ("/_fake/tokens/expire", "/_fake/tokens/invalidate") and method == "POST":
            now = time.time()
            with store.write() as c:
                column = "expires_at" if path.endswith("expire") else "invalid_after"
                c.execute(f"UPDATE tokens SET {column} = ?", (now,))  # noqa: S608 - fixed column names
            return 200, {"ok": True}
        if path == "/_fake/media" and method == "POST":
            with store.write() as c:
                c.execute(
                    "INSERT OR REPLACE INTO inbound_media (media_id, content_type, data) VALUES (?, ?, ?)",
                    (payload["media_id"], payload["content_type"], base64.b64decode(payload["data"])),
                )
            return 200, {"ok": True}
        if path == "/_fake/menu":
            row = conn.execute("SELECT data FROM menu WHERE id = 1").fetchone()
            return 200, json.loads(row[0]) if row else {"button": []}
        if path == "/_fake/qrcodes":
            return 200, {"qrcodes": [json.loads(r[0]) for r in conn.execute("SELECT data FROM qrcodes")]}
        return None

    def _interactions(self, method: str, openid: str, payload: Any):
        """What a person sent the account (``{"interactions": [{"MsgType": "text", "CreateTime": ...}, ...]}``, the
        fields of the callback's message): the customer-service window (window.py) opens on what WeChat counts.
        GET: the person's window now."""
        from . import window

        store = self.store
        if method == "POST":
            items = payload.get("interactions") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ConfigError('body must be {"interactions": [{"MsgType": ..., "Event": ..., "CreateTime": ...}]}')
            now = time.time()
            try:
                with store.write() as conn:
                    kinds = [window.record(conn, openid, item, float(item.get("CreateTime") or now)) for item in items]
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"bad interaction: {exc}") from exc
            return 200, {"recorded": kinds, "window": window.state(store.connection(), openid, time.time())}
        return 200, window.state(store.connection(), openid, time.time())

    def _notices(self, method: str, openid: str, payload: Any):
        """A person's decisions about notice templates (see notices.decide), posted to the callback as WeChat does."""
        store = self.store
        if method != "POST":
            return 200, notices.consents(store.connection(), openid)
        cfg, epoch = store.config()
        try:
            with store.write() as conn:
                events = notices.decide(conn, openid, payload)
        except api.WeChatError:
            return 404, {"error": "unknown openid"}
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if cfg["callback_url"] and payload.get("post", True):
            for event, fields in events:
                self.events.enqueue(epoch, float(cfg["callback_delay"]), event, openid, fields)
        return 200, {"events": [e for e, _f in events], "notices": notices.consents(store.connection(), openid)}


def _touser_matches(touser: str | None, raw: bytes) -> bool:
    """A fault with `touser` applies only to calls whose JSON body is addressed to that openid."""
    if touser is None:
        return True
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and body.get("touser") == touser


def _path_matches(pattern: str | None, path: str) -> bool:
    if not pattern:
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


CALL_KEYS = ("id", "at", "method", "path", "query", "body", "status", "errcode", "fault", "pid")


def _calls(conn, query: dict[str, str]) -> dict[str, Any]:
    where, args = ["1 = 1"], []
    if query.get("path"):
        where.append("path = ?")
        args.append(query["path"])
    if query.get("errcode", "") != "":
        try:
            args.append(int(query["errcode"]))
        except ValueError:
            raise ConfigError("errcode must be an integer") from None
        where.append("errcode = ?")
    if query.get("since_id"):
        where.append("id > ?")
        args.append(int(query["since_id"]) if query["since_id"].isdigit() else 0)
    sql_where = " AND ".join(where)
    count = conn.execute(f"SELECT COUNT(*) FROM calls WHERE {sql_where}", args).fetchone()[0]  # noqa: S608
    if query.get("count_only") not in (None, "", "0"):
        return {"count": count}
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 1_000_000
    rows = conn.execute(
        f"SELECT {', '.join(CALL_KEYS)} FROM calls WHERE {sql_where} ORDER BY id LIMIT ?",  # noqa: S608
        [*args, limit],
    ).fetchall()
    calls = []
    for row in rows:
        call = dict(zip(CALL_KEYS, row, strict=True))
        call["query"] = json.loads(call["query"])
        with contextlib.suppress(ValueError):
            call["body"] = json.loads(call["body"]) if call["body"] else None
        calls.append(call)
    return {"count": count, "calls": calls}


USER_FIELDS = {"openid", "unionid", "nickname", "headimgurl", "remark", "language", "subscribe", "subscribe_time",
               "subscribe_scene", "qr_scene", "qr_scene_str", "tagid_list"}  # fmt: skip


def _clean_user(raw: Any, now: float) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("openid"), str) or not raw["openid"]:
        raise ConfigError("each user needs an openid")
    unknown = set(raw) - USER_FIELDS
    if unknown:
        raise ConfigError(f"unknown user fields: {sorted(unknown)}")
    user = {
        "openid": raw["openid"],
        "language": "zh_CN",
        "subscribe": 1,
        "subscribe_time": int(now),
        "subscribe_scene": "ADD_SCENE_SEARCH",
        "qr_scene": 0,
        "qr_scene_str": "",
        "remark": "",
    }
    user.update({k: v for k, v in raw.items() if k != "tagid_list"})
    user["subscribe"] = 1 if user["subscribe"] else 0
    return user


def _write_users(conn, users: list[dict[str, Any]], tags: dict[str, list[int]]) -> tuple[int, int]:
    created = updated = 0
    for user in users:
        cur = conn.execute(
            "INSERT INTO users (openid, subscribe, data) VALUES (?, ?, ?) ON CONFLICT (openid) DO NOTHING",
            (user["openid"], user["subscribe"], json.dumps(user, ensure_ascii=False)),
        )
        if cur.rowcount:
            created += 1
        else:
            updated += 1
            conn.execute(
                "UPDATE users SET subscribe = ?, data = ? WHERE openid = ?",
                (user["subscribe"], json.dumps(user, ensure_ascii=False), user["openid"]),
            )
    for openid, tagids in tags.items():
        conn.execute("DELETE FROM user_tags WHERE openid = ?", (openid,))
        for tagid in tagids:
            if conn.execute("SELECT 1 FROM tags WHERE id = ?", (tagid,)).fetchone() is None:
                raise ConfigError(f"unknown tag id {tagid}; create it with /cgi-bin/tags/create first")
            conn.execute("INSERT OR IGNORE INTO user_tags (tagid, openid) VALUES (?, ?)", (tagid, openid))
    return created, updated


def _add_users(store: Store, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ConfigError("body must be an object with users and/or generate")
    now = time.time()
    raw_users = payload.get("users", [])
    if not isinstance(raw_users, list):
        raise ConfigError("users must be a list")
    users = [_clean_user(u, now) for u in raw_users]
    tags = {u["openid"]: raw["tagid_list"] for u, raw in zip(users, raw_users, strict=True) if "tagid_list" in raw}
    generate = payload.get("generate", 0)
    if isinstance(generate, bool) or not isinstance(generate, int) or not 0 <= generate <= 1_000_000:
        raise ConfigError("generate must be an integer between 0 and 1000000")
    rng = random.Random(payload.get("seed")) if payload.get("seed") is not None else random.SystemRandom()
    subscribed = 1 if payload.get("subscribe", 1) else 0
    for _ in range(generate):
        users.append(
            {
                "openid": api.make_openid(rng),
                "unionid": api.make_openid(rng, prefix="oU"),
                "language": "zh_CN",
                "subscribe": subscribed,
                "subscribe_time": int(now - rng.randint(0, 3 * 365 * 86400)),
                "subscribe_scene": rng.choice(api.SUBSCRIBE_SCENES),
                "qr_scene": 0,
                "qr_scene_str": "",
                "remark": "",
            }
        )
    with store.write() as conn:
        created, updated = _write_users(conn, users, tags)
    return {"created": created, "updated": updated, "openids": [u["openid"] for u in users]}


def _list_users(conn, query: dict[str, str]) -> dict[str, Any]:
    where, args = "1 = 1", []
    if query.get("subscribe") in ("0", "1"):
        where, args = "subscribe = ?", [int(query["subscribe"])]
    count = conn.execute(f"SELECT COUNT(*) FROM users WHERE {where}", args).fetchone()[0]  # noqa: S608
    if query.get("count_only") not in (None, "", "0"):
        return {"count": count}
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else 1_000_000
    rows = conn.execute(f"SELECT data FROM users WHERE {where} ORDER BY seq LIMIT ?", [*args, limit])  # noqa: S608
    return {"count": count, "users": [json.loads(r[0]) for r in rows]}


def _set_subscription(store: Store, openid: str, subscribe: bool, payload: Any):
    if not isinstance(payload, dict):
        raise ConfigError("body must be an object")
    now = time.time()
    with store.write() as conn:
        row = conn.execute("SELECT data FROM users WHERE openid = ?", (openid,)).fetchone()
        if row is None and not subscribe:
            return 404, {"error": "unknown openid"}
        user = json.loads(row[0]) if row else _clean_user({"openid": openid}, now)
        user["subscribe"] = int(subscribe)
        if subscribe:
            user["subscribe_time"] = int(payload.get("subscribe_time", now))
            user["subscribe_scene"] = payload.get("subscribe_scene", "ADD_SCENE_SEARCH")
            user["qr_scene"] = int(payload.get("qr_scene", 0))
            user["qr_scene_str"] = str(payload.get("qr_scene_str", ""))
            for key in ("unionid", "nickname", "language", "remark"):
                if key in payload:
                    user[key] = payload[key]
        else:
            user["unsubscribe_time"] = int(now)  # datacube's cancel_user counts it
            # WeChat drops an unfollower's tags.
            conn.execute("DELETE FROM user_tags WHERE openid = ?", (openid,))
        _write_users(conn, [user], {})
    return 200, user


# --- running it -------------------------------------------------------------------------------------------------


def make_store(state_dir: str | os.PathLike | None, config: dict[str, Any]) -> Store:
    directory = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="fake-wechat-"))
    store = Store(directory / "state.sqlite3")
    store.initialize(config)
    return store


def serve(
    *,
    host: str = "127.0.0.1",
    port: int,
    workers: int = 2,
    threads: int = 16,
    state_dir: str | None = None,
    config: dict[str, Any] | None = None,
    log_calls: bool = True,
    generate_users: int = 0,
) -> None:
    """Run the fake under gunicorn (gthread workers, keep-alive) in the foreground until interrupted."""
    from gunicorn.app.base import BaseApplication

    store = make_store(state_dir, config or {})
    if generate_users:
        _add_users(store, {"generate": generate_users})
    app = FakeWeChatApp(store, log_calls=log_calls)

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "keepalive": 75,
                "timeout": 120,
                "graceful_timeout": 1,
                "loglevel": "warning",
                "accesslog": None,
                "proc_name": "fake_wechat",
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    print(f"fake WeChat listening on http://{host}:{port}/ (state in {store.path})", file=sys.stderr, flush=True)
    try:
        _Gunicorn().run()
    finally:
        if not state_dir:
            shutil.rmtree(Path(store.path).parent, ignore_errors=True)


def serve_in_thread(*, port: int = 0, config: dict[str, Any] | None = None, state_dir: str | None = None):
    """Start the fake in a daemon thread of this process; return (base URL ending in "/", server).

    Stop it with ``server.shutdown(); server.server_close()`` (which also removes a temporary state directory).
    Single process, HTTP/1.0: for quick unit tests, not for benchmarks.
    """
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

        def server_close(self) -> None:
            super().server_close()
            if not state_dir:
                shutil.rmtree(Path(store.path).parent, ignore_errors=True)

    class _QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    store = make_store(state_dir, config or {})
    server = make_server(
        "127.0.0.1", port, FakeWeChatApp(store, log_calls=False), server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="fake-wechat", daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/", server
