"""A call to WeChat's API as the fake answers it, and the log of calls.

:class:`WeChatApiMixin` (part of :class:`~.server.FakeWeChatApp`) takes each call under ``/cgi-bin/``,
``/datacube/``, ``/wxaapi/`` and ``/sns/`` through the configured latency and injected faults, the access token,
quotas and minute limits, to its handler (``api.ROUTES``); it records the call and posts the job-finish events.
:func:`_calls` reads the log for ``GET /_fake/calls``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any

from . import api, datacube, materials, menu, notices, oauth, publishing, qrcodes, sending, tokens, users  # noqa: F401 - they register their routes
from .api import Ctx, WeChatError
from .state import ConfigError, next_counter

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


class WeChatApiMixin:
    """WeChat's API; needs ``store``, ``events`` (an :class:`~.events.EventSender`) and ``log_calls``."""

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
                tokens.check_access_token(conn, ctx.query.get("access_token"), ctx.now)
            if fault and "errcode" in fault:
                raise WeChatError(int(fault["errcode"]))
            if ctx.path in ctx.cfg["denied_apis"]:
                raise WeChatError(48001)
            quota = ctx.cfg["quotas"].get(ctx.path)
            day_key = f"quota:{ctx.path}:{time.strftime('%Y%m%d')}"
            if quota is not None:
                used = conn.execute("SELECT value FROM counters WHERE name = ?", (day_key,)).fetchone()
                if used and used[0] >= quota:
                    raise WeChatError(45028 if ctx.path in sending.MASS_PATHS else 45009)
            per_minute = ctx.cfg["minute_limits"].get(ctx.path)
            if per_minute is not None:
                minute_key = f"minute:{ctx.path}:{int(ctx.now // 60)}"
                if next_counter(conn, minute_key) > per_minute:
                    raise WeChatError(45011)
            body = handler(ctx)
            if quota is not None:
                next_counter(conn, day_key)
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
                next_counter(conn, counter)
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
                materials.recorded_body(ctx),
                status,
                errcode,
                fault,
                os.getpid(),
            ),
        )

    def _showqrcode(self, query: dict[str, str]):
        import segno

        conn = self.store.connection()
        qrcode = qrcodes.qrcode_for_ticket(conn, query.get("ticket", ""))
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
