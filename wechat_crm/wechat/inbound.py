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

import contextlib
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

from accounts.kinds import InteractionKind as Kind

from . import crypto
from . import xml as wxml
from .replay import ReplayCheck

logger = logging.getLogger(__name__)

SUCCESS = "success"
MAX_DEDUPE_KEY_LENGTH = 200
MAX_SCENE_LENGTH = 128

# XML field -> (attribute of InboundMessage.attributes, converter). Applied whatever the type: a field name means
# the same thing in every message and event that carries it.
_TEXT_FIELDS = {
    "Content": "content",
    "MediaId": "media_id",
    "ThumbMediaId": "thumb_media_id",
    "PicUrl": "pic_url",
    "ThumbUrl": "pic_url",
    "Format": "format",
    "Title": "title",
    "Description": "description",
    "Url": "url",
    "PagePath": "url",
    "Label": "label",
    "Ticket": "ticket",
    "Status": "status",
}
_FLOAT_FIELDS = {
    "Location_X": "latitude",
    "Location_Y": "longitude",
    "Latitude": "latitude",
    "Longitude": "longitude",
    "Precision": "precision",
}
_INT_FIELDS = {"Scale": "scale"}
SCENE_PREFIX = "qrscene_"
# Events whose lowercase name is also a message type get a kind of their own (accounts.kinds).
_EVENT_KINDS = {"location": Kind.LOCATION_EVENT.value}

# Subscription-notice (订阅通知) events carry a list of items under one element: the popup's and the later change's
# decisions per template, and the outcome of each notice sent (by MsgID).
NOTICE_LISTS = {
    Kind.SUBSCRIBE_MSG_POPUP_EVENT.value: "SubscribeMsgPopupEvent",
    Kind.SUBSCRIBE_MSG_CHANGE_EVENT.value: "SubscribeMsgChangeEvent",
    Kind.SUBSCRIBE_MSG_SENT_EVENT.value: "SubscribeMsgSentEvent",
}


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One item of a subscription-notice event. `status` is "accept" or "reject" (popup, change); a sent event's
    item has `msg_id`, `error_code` (0: delivered) and `error_status` ("success", or WeChat's failure)."""

    template_id: str
    status: str = ""
    popup_scene: str = ""
    msg_id: int | None = None
    error_code: int | None = None
    error_status: str = ""


def notice_items(kind: str, fields: dict[str, Any]) -> list[NoticeItem]:
    """The items of a subscription-notice event (the parsed document, as stored in Interaction.data). WeChat sends
    one <List> per template: one item parses as a dict, several as a list. Items without a template id are
    dropped."""
    container = fields.get(NOTICE_LISTS.get(kind, ""))
    raw = container.get("List") if isinstance(container, dict) else None
    if raw is None and isinstance(fields.get("List"), dict | list):  # the JSON push format puts List at the top
        raw = fields["List"]
    entries = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    items = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        template_id = entry.get("TemplateId")
        if not isinstance(template_id, str) or not template_id or len(template_id) > MAX_ID_LENGTH:
            continue
        items.append(
            NoticeItem(
                template_id=template_id,
                status=str(entry.get("SubscribeStatusString") or "").strip().lower(),
                popup_scene=str(entry.get("PopupScene") or ""),
                msg_id=_int_or_none(entry.get("MsgID")),
                error_code=_int_or_none(entry.get("ErrorCode")),
                error_status=str(entry.get("ErrorStatus") or ""),
            )
        )
    return items


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class MessageError(ValueError):
    """A well-formed document that is not a WeChat message (a required field is missing or invalid)."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message or event, parsed and typed. `kind` is an accounts.kinds.InteractionKind value (the lowercase
    MsgType, or the lowercase Event for events), or the lowercase name of a type WeChat added since."""

    kind: str
    openid: str
    to_user: str
    created_at: datetime
    received_at: datetime
    dedupe_key: str
    msg_id: str
    event_key: str
    scene: str
    raw_xml: str
    fields: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def is_event(self) -> bool:
        return self.fields.get("MsgType") == "event"


# Identifiers longer than this are not WeChat's (openids are 28 characters, MsgIds 19 digits): refused with a 400
# rather than failing the INSERT, which would answer 503 and make WeChat retry the same body for ever.
MAX_ID_LENGTH = 64


def _required(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise MessageError(f"missing field {name}")
    return value


def _identifier(fields: dict[str, Any], name: str) -> str:
    value = _required(fields, name)
    if len(value) > MAX_ID_LENGTH or not value.isprintable() or " " in value:
        raise MessageError(f"invalid field {name}")
    return value


def build_message(fields: dict[str, Any], *, raw_xml: str, received_at: datetime | None = None) -> InboundMessage:
    """Type a parsed callback document. Raises MessageError when a required field is missing or invalid."""
    openid = _identifier(fields, "FromUserName")
    to_user = _identifier(fields, "ToUserName")
    msg_type = _identifier(fields, "MsgType").lower()
    try:
        create_time = int(_required(fields, "CreateTime"))
        created_at = datetime.fromtimestamp(create_time, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise MessageError("invalid field CreateTime") from exc

    event_key = fields.get("EventKey") or ""
    if not isinstance(event_key, str):
        event_key = ""
    msg_id = fields.get("MsgId") or fields.get("MsgID") or ""
    if not isinstance(msg_id, str):
        msg_id = ""
    if len(msg_id) > MAX_ID_LENGTH:
        raise MessageError("invalid field MsgId")
    scene = ""
    if msg_type == "event":
        event = _identifier(fields, "Event").lower()
        kind = _EVENT_KINDS.get(event, event)
        if kind == Kind.SUBSCRIBE and event_key.startswith(SCENE_PREFIX):
            scene = event_key[len(SCENE_PREFIX) :]
        elif kind == Kind.SCAN:
            scene = event_key
        dedupe_key = f"evt:{openid}:{create_time}:{event}:{event_key}"
        if msg_id:  # TEMPLATESENDJOBFINISH and MASSSENDJOBFINISH carry the MsgID of the send
            dedupe_key += f":{msg_id}"
        else:  # PUBLISHJOBFINISH and the subscription-notice events carry what they report in nested elements
            nested = {name: value for name, value in fields.items() if isinstance(value, dict | list)}
            if nested:
                digest = hashlib.sha256(json.dumps(nested, sort_keys=True, default=str).encode()).hexdigest()
                dedupe_key += f":{digest[:16]}"
    else:
        kind = msg_type
        dedupe_key = f"msg:{msg_id}" if msg_id else f"msg:{openid}:{create_time}:{kind}"
    scene = scene[:MAX_SCENE_LENGTH]  # WeChat's scene_str has at most 64 characters; anything longer is cut
    if len(dedupe_key) > MAX_DEDUPE_KEY_LENGTH:
        dedupe_key = "sha256:" + hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()

    attributes: dict[str, Any] = {}
    for name, value in fields.items():
        if not isinstance(value, str):
            continue
        if name in _TEXT_FIELDS:
            attributes.setdefault(_TEXT_FIELDS[name], value)
        elif name in _FLOAT_FIELDS:
            with contextlib.suppress(ValueError):  # kept in `fields`; the typed column stays empty
                attributes[_FLOAT_FIELDS[name]] = float(value)
        elif name in _INT_FIELDS:
            with contextlib.suppress(ValueError):
                attributes[_INT_FIELDS[name]] = int(value)
    if kind == Kind.VIEW and event_key:
        attributes.setdefault("url", event_key)

    return InboundMessage(
        kind=kind,
        openid=openid,
        to_user=to_user,
        created_at=created_at,
        received_at=received_at or datetime.now(tz=UTC),
        dedupe_key=dedupe_key,
        msg_id=msg_id,
        event_key=event_key,
        scene=scene,
        raw_xml=raw_xml,
        fields=fields,
        attributes=attributes,
    )


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
        return cls(
            token=settings.WECHAT_TOKEN,
            app_id=settings.WECHAT_APP_ID,
            aes_keys=[k for k in (settings.WECHAT_ENCODING_AES_KEY, settings.WECHAT_ENCODING_AES_KEY_PREVIOUS) if k],
            max_body=settings.WECHAT_CALLBACK_MAX_BODY,
            max_clock_skew=settings.WECHAT_CALLBACK_MAX_CLOCK_SKEW,
            allow_plain=getattr(settings, "WECHAT_ALLOW_PLAIN_MODE", False),
        )


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
    query = request.GET
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

    from . import dispatch  # imported here: dispatch reaches the apps, which need the app registry ready

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
