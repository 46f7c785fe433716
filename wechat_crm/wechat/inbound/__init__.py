"""The WeChat callback, by concern: `request` verifies, opens and answers the request (handle_callback, the
rejections, the encrypted reply); `message` types the document (InboundMessage, build_message, notice_items).
Callers keep inbound.<name>."""

from .message import (
    MAX_DEDUPE_KEY_LENGTH,
    MAX_ID_LENGTH,
    MAX_SCENE_LENGTH,
    NOTICE_LISTS,
    SCENE_PREFIX,
    SUCCESS,
    InboundMessage,
    MessageError,
    NoticeItem,
    build_message,
    notice_items,
)
from .request import CallbackConfig, Rejected, ReplayCheck, encrypt_reply, handle_callback

__all__ = [
    "MAX_DEDUPE_KEY_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_SCENE_LENGTH",
    "NOTICE_LISTS",
    "SCENE_PREFIX",
    "SUCCESS",
    "CallbackConfig",
    "InboundMessage",
    "MessageError",
    "NoticeItem",
    "Rejected",
    "ReplayCheck",
    "build_message",
    "encrypt_reply",
    "handle_callback",
    "notice_items",
]
