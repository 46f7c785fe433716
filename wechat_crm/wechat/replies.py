"""Passive replies: the XML answered in the callback's response (the callback's reply path encrypts it in safe
mode). Reply builders in the apps' events modules call these with plain values."""

from __future__ import annotations

import time

from . import xml
from .inbound import InboundMessage


def _envelope(message: InboundMessage, msg_type: str) -> dict:
    return {
        "ToUserName": message.openid,
        "FromUserName": message.to_user,
        "CreateTime": int(time.time()),
        "MsgType": msg_type,
    }


def reply_text(message: InboundMessage, content: str) -> str:
    """A passive text reply."""
    return xml.render({**_envelope(message, "text"), "Content": content})


def reply_image(message: InboundMessage, media_id: str) -> str:
    """A passive image reply (a permanent or temporary media_id)."""
    return xml.render({**_envelope(message, "image"), "Image": {"MediaId": media_id}})


def reply_news(message: InboundMessage, articles: list[dict[str, str]]) -> str:
    """A passive article card reply: items with title, description, pic_url and url (at most 1 shown by WeChat)."""
    items = [
        {"Title": a.get("title", ""), "Description": a.get("description", ""), "PicUrl": a.get("pic_url", ""),
         "Url": a.get("url", "")}
        for a in articles[:8]
    ]  # fmt: skip
    return xml.render({**_envelope(message, "news"), "ArticleCount": len(items), "Articles": {"item": items}})
