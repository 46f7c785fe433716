"""WeChat's customer-service window as the fake enforces it (客服消息下发规则), independent of the product's own
computation (conversations.policy): the fake learns what each person did from what it is told (the simulator and
the tests' callback poster tell it every message or event they post to the callback) and counts the
customer-service messages it accepted.

* a message the person sent (any MsgType but event): 5 customer-service messages within 48 hours;
* a follow (subscribe), a QR scan (SCAN) or a menu click of the kinds click / scancode_push / scancode_waitmsg:
  3 within one minute;
* nothing else: not an automatic LOCATION report, not VIEW, not a click on a web page.

Outside every window message/custom/send answers 45015; when every open window's count is used up, 45047.
"""

from __future__ import annotations

import sqlite3
from typing import Any

MESSAGE_SECONDS, MESSAGE_LIMIT = 48 * 3600, 5
EVENT_SECONDS, EVENT_LIMIT = 60, 3
OPENING_EVENTS = {"subscribe", "scan", "click", "scancode_push", "scancode_waitmsg"}


def kind_of(fields: dict[str, Any]) -> str:
    """ "message", "event" (one that opens the one-minute window) or "other" (recorded, opens nothing)."""
    msgtype = str(fields.get("MsgType") or "").lower()
    if not msgtype:
        raise ValueError("an interaction needs its MsgType")
    if msgtype != "event":
        return "message"
    return "event" if str(fields.get("Event") or "").lower() in OPENING_EVENTS else "other"


def record(conn: sqlite3.Connection, openid: str, fields: dict[str, Any], at: float) -> str:
    kind = kind_of(fields)
    conn.execute("INSERT INTO cs_interactions (openid, kind, at) VALUES (?, ?, ?)", (openid, kind, at))
    return kind


def state(conn: sqlite3.Connection, openid: str, now: float) -> dict[str, Any]:
    """The person's window now: open, how many more messages, until when, and the errcode a send would get."""
    message, event = conn.execute(
        "SELECT MAX(CASE WHEN kind = 'message' THEN at END), MAX(CASE WHEN kind = 'event' THEN at END) "
        "FROM cs_interactions WHERE openid = ? AND at > ? AND at <= ?",
        (openid, now - MESSAGE_SECONDS, now),
    ).fetchone()
    windows = []
    if message is not None:
        windows.append((message, message + MESSAGE_SECONDS, MESSAGE_LIMIT))
    if event is not None and event + EVENT_SECONDS > now:
        windows.append((event, event + EVENT_SECONDS, EVENT_LIMIT))
    if not windows:
        return {"open": False, "remaining": 0, "closes_at": None, "errcode": 45015}
    since = min(start for start, _end, _limit in windows)
    sends = [r[0] for r in conn.execute("SELECT at FROM cs_sends WHERE openid = ? AND at >= ?", (openid, since))]
    remaining, closes_at = max(((limit - sum(1 for at in sends if at >= start), end) for start, end, limit in windows),
                               key=lambda w: w[0])  # fmt: skip
    if remaining <= 0:
        return {"open": False, "remaining": 0, "closes_at": None, "errcode": 45047}
    return {"open": True, "remaining": remaining, "closes_at": closes_at, "errcode": 0}


def sent(conn: sqlite3.Connection, openid: str, now: float) -> None:
    conn.execute("INSERT INTO cs_sends (openid, at) VALUES (?, ?)", (openid, now))
