"""WeChat's permanent material and body images as the fake serves them, with WeChat's limits and error codes.

* ``material/add_material`` (multipart ``media``, ``type`` image or thumb): image is BMP/PNG/JPEG/GIF up to 10 MB,
  thumb is JPEG up to 64 KB (40005 wrong type, 40006 too big); answers ``media_id`` (and ``url`` for images).
* ``media/uploadimg``: JPEG/PNG up to 1 MB, answers the ``url`` to put in an article's body.
* ``material/get_materialcount``, ``material/batchget_material``, ``material/del_material``.

The error messages of the publishing API (this module's and :mod:`.publishing`'s) are WeChat's, in ``ERRMSG``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
from typing import Any

from .api import OK, Ctx, WeChatError, route

IMAGE_FORMATS = {"jpeg", "png", "gif", "bmp"}
LIMITS = {"image": (IMAGE_FORMATS, 10 * 1024 * 1024), "thumb": ({"jpeg"}, 64 * 1024)}
BODY_IMAGE = ({"jpeg", "png"}, 1024 * 1024)

ERRMSG = {
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid meida size",
    40007: "invalid media_id",
    45002: "content size out of limit",
    45003: "title size out of limit",
    45004: "description size out of limit",
    45110: "author size out of limit",
    45166: "invalid content",
    53404: "account has been punished",
}


def _error(code: int) -> WeChatError:
    return WeChatError(code, ERRMSG.get(code))


# --- uploads ---------------------------------------------------------------------------------------------------


def _parts(ctx: Ctx) -> dict[str, tuple[str, bytes]]:
    if not ctx.content_type.lower().startswith("multipart/form-data"):
        raise WeChatError(41005, "media data missing")
    head = f"Content-Type: {ctx.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + ctx.raw)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[str(name)] = (part.get_filename() or "", part.get_payload(decode=True) or b"")
    return parts


def recorded_body(ctx: Ctx) -> str:
    """What the call log keeps of a request: the JSON as sent, or for an upload each part's name, file and size."""
    if not ctx.content_type.lower().startswith("multipart/"):
        return ctx.raw.decode("utf-8", "replace")
    try:
        parts = _parts(ctx)
    except Exception:
        return json.dumps({"multipart": "unreadable"})
    summary = {name: {"filename": fn, "size": len(data), "format": sniff(data)} for name, (fn, data) in parts.items()}
    return json.dumps({"multipart": summary})


def sniff(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return ""


def _media(ctx: Ctx, formats: set[str], limit: int) -> tuple[str, bytes, str]:
    filename, data = _parts(ctx).get("media", ("", b""))
    if not data:
        raise WeChatError(41005, "media data missing")
    kind = sniff(data)
    if kind not in formats:
        raise _error(40005)
    if len(data) > limit:
        raise _error(40006)
    return filename or f"upload.{kind}", data, kind


def _mmbiz_url(kind: str) -> str:
    return f"http://mmbiz.qpic.cn/mmbiz_{kind}/{secrets.token_urlsafe(24)}/0?wx_fmt={kind}"


@route("/cgi-bin/material/add_material")
def material_add(ctx: Ctx) -> dict[str, Any]:
    media_type = ctx.query.get("type", "")
    if media_type not in LIMITS:
        raise _error(40004)
    filename, data, kind = _media(ctx, *LIMITS[media_type])
    media_id = secrets.token_urlsafe(32)
    url = _mmbiz_url(kind) if media_type == "image" else ""
    ctx.conn.execute(
        "INSERT INTO materials (media_id, type, name, url, size, update_time) VALUES (?, ?, ?, ?, ?, ?)",
        (media_id, media_type, filename, url, len(data), int(ctx.now)),
    )
    return {"media_id": media_id, "url": url} if url else {"media_id": media_id, "item": []}


@route("/cgi-bin/media/uploadimg")
def media_uploadimg(ctx: Ctx) -> dict[str, Any]:
    _filename, data, kind = _media(ctx, *BODY_IMAGE)
    url = _mmbiz_url(kind)
    ctx.conn.execute("INSERT INTO body_images (url, size, at) VALUES (?, ?, ?)", (url, len(data), ctx.now))
    return {"url": url}


@route("/cgi-bin/material/get_materialcount")
def material_count(ctx: Ctx) -> dict[str, Any]:
    counts = dict(ctx.conn.execute("SELECT type, COUNT(*) FROM materials GROUP BY type").fetchall())
    return {
        "voice_count": counts.get("voice", 0),
        "video_count": counts.get("video", 0),
        "image_count": counts.get("image", 0) + counts.get("thumb", 0),
        "news_count": 0,
    }


@route("/cgi-bin/material/batchget_material")
def material_batchget(ctx: Ctx) -> dict[str, Any]:
    body = ctx.json()
    media_type, offset, count = body.get("type"), body.get("offset", 0), body.get("count", 20)
    if media_type not in ("image", "voice", "video", "news"):
        raise _error(40004)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, count)) or offset < 0:
        raise WeChatError(47001)
    if not 1 <= count <= 20:
        raise WeChatError(47001, "data format error, count must be 1 to 20")
    types = ("image", "thumb") if media_type == "image" else (media_type,)
    marks = ",".join("?" * len(types))
    total = ctx.conn.execute(f"SELECT COUNT(*) FROM materials WHERE type IN ({marks})", types).fetchone()[0]  # noqa: S608
    rows = ctx.conn.execute(
        f"SELECT media_id, name, update_time, url FROM materials WHERE type IN ({marks}) "  # noqa: S608
        "ORDER BY update_time DESC, media_id LIMIT ? OFFSET ?",
        (*types, count, offset),
    ).fetchall()
    items = [{"media_id": m, "name": n, "update_time": t, "url": u} for m, n, t, u in rows]
    return {"total_count": total, "item_count": len(items), "item": items}


@route("/cgi-bin/material/del_material")
def material_delete(ctx: Ctx) -> dict[str, Any]:
    cur = ctx.conn.execute("DELETE FROM materials WHERE media_id = ?", (ctx.json().get("media_id"),))
    if not cur.rowcount:
        raise _error(40007)
    return dict(OK)
