"""A callback document, typed: InboundMessage, built by build_message from the parsed XML, and the items of the
subscription-notice events (notice_items). Pure: no request, no database."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from accounts.kinds import InteractionKind as Kind

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
