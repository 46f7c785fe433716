"""The WeChat callback: verify, parse, record the interaction (through dispatch), reply. Nothing else in the request.

Rejections, all before anything is written:
  403 missing or wrong signature, or a timestamp more than WECHAT_CALLBACK_MAX_CLOCK_SKEW seconds from now;
  403 a plain-mode request (no encrypt_type=aes) while an AES key is configured, unless WECHAT_ALLOW_PLAIN_MODE
      (a downgrade: the body would be trusted on the URL's signature alone, which covers no byte of it);
  403 a (timestamp, nonce) pair seen in the last WECHAT_CALLBACK_MAX_CLOCK_SKEW seconds with another body (a signed
      URL replayed with a forged body); the same pair with the same body is WeChat's retry, answered as before
      (decided after the body is parsed, so a forged body that does not parse gets its 400). In safe mode the
      msg_signature, which covers the encrypted message, refuses another body by itself (403 bad msg_signature);
      the pair is remembered in plain mode only;
  413 a body over WECHAT_CALLBACK_MAX_BODY bytes (never read past the limit);
  400 malformed XML (including any DTD or entity, or nesting deeper than xml.MAX_DEPTH), a missing required field,
      a decryption failure.
A database outage answers 503 (not "success") so that WeChat retries; the endpoint never answers 500.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.handlers.wsgi import get_str_from_wsgi
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from .. import crypto
from .. import xml as wxml
from ..replay import ReplayCheck
from .message import SUCCESS, InboundMessage, MessageError, build_message

logger = logging.getLogger("wechat_crm.wechat.inbound")


# --- The request ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    token: str
    app_id: str
    aes_keys: list[str]
    max_body: int
    max_clock_skew: int
    allow_plain: bool = False

    @classmethod
    def from_settings(cls) -> CallbackConfig:
        """The settings as they are now (read at each request: tests change them), built once per set of values."""
        return _config(
            settings.WECHAT_TOKEN,
            settings.WECHAT_APP_ID,
            settings.WECHAT_ENCODING_AES_KEY,
            settings.WECHAT_ENCODING_AES_KEY_PREVIOUS,
            settings.WECHAT_CALLBACK_MAX_BODY,
            settings.WECHAT_CALLBACK_MAX_CLOCK_SKEW,
            getattr(settings, "WECHAT_ALLOW_PLAIN_MODE", False),
        )


@lru_cache(maxsize=8)
def _config(
    token: str, app_id: str, key: str, previous_key: str, max_body: int, max_clock_skew: int, allow_plain: bool
) -> CallbackConfig:
    return CallbackConfig(
        token=token,
        app_id=app_id,
        aes_keys=[k for k in (key, previous_key) if k],
        max_body=max_body,
        max_clock_skew=max_clock_skew,
        allow_plain=allow_plain,
    )


def _query(request: HttpRequest) -> dict[str, str]:
    """The query string's parameters, the last value of a repeated one (what request.GET.get gives), read without
    building Django's QueryDict (a tenth of the callback's CPU in Python). Too many of them is a 400."""
    query = get_str_from_wsgi(request.META, "QUERY_STRING", "")
    try:
        return dict(parse_qsl(query, keep_blank_values=True, max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS))
    except ValueError:
        raise Rejected(400, "too many query parameters") from None


class Rejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _text(content: str, status: int = 200) -> HttpResponse:
    return HttpResponse(content, status=status, content_type="text/plain; charset=utf-8")


def handle_callback(request: HttpRequest) -> HttpResponse:
    """The whole callback. Every outcome is an HTTP answer; nothing escapes as a 500."""
    try:
        return _handle(request, CallbackConfig.from_settings())
    except Rejected as exc:
        logger.info("wechat callback rejected: %s %s", exc.status, exc.reason)
        return _text(exc.reason, exc.status)
    except DatabaseError:
        logger.exception("wechat callback: database error, answering 503 so that WeChat retries")
        return _text("database unavailable", 503)
    except Exception:
        logger.exception("wechat callback: unexpected error, answering 503 so that WeChat retries")
        return _text("temporarily unavailable", 503)


def _handle(request: HttpRequest, config: CallbackConfig) -> HttpResponse:
    query = _query(request)
    signature = query.get("signature", "")
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    if not (signature and timestamp and nonce):
        raise Rejected(403, "missing signature")
    if not crypto.signature_matches(signature, config.token, timestamp, nonce):
        raise Rejected(403, "bad signature")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise Rejected(403, "bad timestamp") from None
    if abs(time.time() - stamp) > config.max_clock_skew:
        raise Rejected(403, "stale timestamp")

    if request.method == "GET":
        return _text(query.get("echostr", ""))
    if request.method != "POST":
        return _text("method not allowed", 405)

    safe_mode = query.get("encrypt_type", "").lower() == "aes"
    if config.aes_keys and not safe_mode and not config.allow_plain:
        raise Rejected(403, "plain mode refused: this account is configured for safe mode")
    body = _read_body(request, config.max_body)
    # In safe mode msg_signature covers the encrypted message (checked in _open): another body under the same
    # signed URL fails it, and the same body is WeChat's retry (stored once by its dedupe key). Only plain mode,
    # whose signature covers no byte of the body, needs the pair remembered, and pays a round trip to Redis for it.
    window = 2 * config.max_clock_skew + 1  # the clock skew accepted, on both sides
    replay = ReplayCheck(digest="") if safe_mode else ReplayCheck.send(timestamp, nonce, body, window=window)
    try:
        message, key = _open(query, body, config, safe_mode=safe_mode, timestamp=timestamp, nonce=nonce)
        if replay.replayed():
            raise Rejected(403, "replayed nonce with another body")
    finally:
        replay.close()

    from .. import dispatch  # imported here: dispatch reaches the apps, which need the app registry ready

    reply = dispatch.handle(message)
    return _reply(reply, config, nonce=nonce, key=key)


# WeChat's safe-mode envelope exactly as WeChat sends it: <ToUserName> (optional) and <Encrypt>, each in CDATA, and
# nothing else (no declaration, DTD or entity can match). Its Encrypt is read without building a tree; any other
# body goes through the parser, which gives the same value for this shape.
_ENVELOPE = re.compile(
    rb"\s*<xml>\s*(?:<ToUserName><!\[CDATA\[[^\]<>&]{0,64}\]\]></ToUserName>\s*)?"
    rb"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]{1,100000})\]\]></Encrypt>\s*</xml>\s*"
)


def _envelope(body: bytes, safe_mode: bool) -> dict[str, Any]:
    if safe_mode:
        match = _ENVELOPE.fullmatch(body)
        if match is not None:
            return {"Encrypt": match.group(1).decode("ascii")}
    try:
        return wxml.parse(body)
    except wxml.XMLError as exc:
        raise Rejected(400, "malformed XML") from exc


def _open(
    query: Any, body: bytes, config: CallbackConfig, *, safe_mode: bool, timestamp: str, nonce: str
) -> tuple[InboundMessage, str]:
    """Parse (and in safe mode check and decrypt) the body: the message and the AES key that opened it."""
    outer = _envelope(body, safe_mode)

    if safe_mode:
        encrypted = outer.get("Encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise Rejected(400, "missing field Encrypt")
        msg_signature = query.get("msg_signature", "")
        if not msg_signature or not crypto.signature_matches(msg_signature, config.token, timestamp, nonce, encrypted):
            raise Rejected(403, "bad msg_signature")
        try:
            plain, key = crypto.decrypt_with_any(encrypted, config.app_id, config.aes_keys)
        except crypto.DecryptionError as exc:
            raise Rejected(400, "decryption failed") from exc
        try:
            fields = wxml.parse(plain)
        except wxml.XMLError as exc:
            raise Rejected(400, "malformed XML") from exc
    else:
        plain, fields, key = body, outer, ""

    try:
        raw_xml = plain.decode("utf-8")
        message = build_message(fields, raw_xml=raw_xml)
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    except MessageError as exc:
        raise Rejected(400, str(exc)) from exc
    return message, key


def _read_body(request: HttpRequest, limit: int) -> bytes:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise Rejected(413, "body too large")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise Rejected(413, "body too large")
    return body


def _reply(reply: str, config: CallbackConfig, *, nonce: str, key: str) -> HttpResponse:
    """A "success" (or empty) reply is answered as it is; an XML reply is encrypted in safe and compatible mode,
    with the key that decrypted the message (during a rotation WeChat may still hold the previous one)."""
    if reply in ("", SUCCESS) or not key:
        content_type = "text/plain; charset=utf-8" if reply in ("", SUCCESS) else "application/xml; charset=utf-8"
        return HttpResponse(reply, content_type=content_type)
    envelope = encrypt_reply(reply, config, nonce=nonce, key=key)
    return HttpResponse(envelope, content_type="application/xml; charset=utf-8")


def encrypt_reply(reply: str, config: CallbackConfig, *, nonce: str, key: str, timestamp: str | None = None) -> str:
    """The safe-mode envelope of a passive reply: Encrypt, MsgSignature, TimeStamp, Nonce."""
    timestamp = timestamp or str(int(time.time()))
    encrypted = crypto.cipher_for(key).encrypt(reply, config.app_id)
    return wxml.render(
        {
            "Encrypt": encrypted,
            "MsgSignature": crypto.signature(config.token, timestamp, nonce, encrypted),
            "TimeStamp": int(timestamp),
            "Nonce": nonce,
        }
    )
