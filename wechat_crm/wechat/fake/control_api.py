"""The fake's control API under ``/_fake/``, for tests, the demo and benchmarks (:class:`ControlApiMixin`, part of
:class:`~.server.FakeWeChatApp`), and the people it seeds, lists and (un)subscribes.

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
``POST /_fake/media`` registers a subscriber's image or voice for ``/cgi-bin/media/get``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import time
from typing import Any

from . import notices
from .api import WeChatError
from .calls import JSON, _calls, _dumps
from .state import ConfigError, Store
from .users import SUBSCRIBE_SCENES, _tag_ids, make_openid


class ControlApiMixin:
    """The control API; needs ``store`` and ``events`` (an :class:`~.events.EventSender`)."""

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
            user["tagid_list"] = _tag_ids(conn, [openid])[openid]
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
        except WeChatError:
            return 404, {"error": "unknown openid"}
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if cfg["callback_url"] and payload.get("post", True):
            for event, fields in events:
                self.events.enqueue(epoch, float(cfg["callback_delay"]), event, openid, fields)
        return 200, {"events": [e for e, _f in events], "notices": notices.consents(store.connection(), openid)}


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
                "openid": make_openid(rng),
                "unionid": make_openid(rng, prefix="oU"),
                "language": "zh_CN",
                "subscribe": subscribed,
                "subscribe_time": int(now - rng.randint(0, 3 * 365 * 86400)),
                "subscribe_scene": rng.choice(SUBSCRIBE_SCENES),
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
