"""What the product does on each message and event: one table from kind to route. Read this to know the product.

A route has three parts:
  record      runs in the request: stores the interaction (exactly once) and its effect on the subscriber.
  replies     run in the request, in order: the passive reply builders; the first one that answers something else
              than "success" (or "") wins (conversations' channel rules, the channel's welcome, auto-reply rules,
              preference keywords...). None answering: "success".
  follow_ups  run later in Celery (accounts.tasks.interaction_process), after the interaction is committed.
              An interaction whose kind has follow-ups is stored with processed_at empty (the outbox);
              the others are stored as already processed.

Later work adds entries with `register_follow_up(kind, handler)` / `register_reply(kind, builder, before=...)`.
`kind` is the lowercase MsgType, or the lowercase Event name for events ("text", "subscribe", "scan", ...).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from accounts import profiles as accounts_profiles
from accounts import services as accounts_services
from campaigns import selectors as campaigns_selectors
from campaigns import services as campaigns_services

from . import xml
from .inbound import SUCCESS, InboundMessage

logger = logging.getLogger(__name__)

ReplyBuilder = Callable[[InboundMessage], str]
FollowUp = Callable[[Any], None]  # receives the accounts.Interaction


def reply_success(message: InboundMessage) -> str:
    return SUCCESS


def reply_text(message: InboundMessage, content: str) -> str:
    """A passive text reply (the callback's reply path encrypts it in safe mode)."""
    return xml.render(
        {
            "ToUserName": message.openid,
            "FromUserName": message.to_user,
            "CreateTime": int(time.time()),
            "MsgType": "text",
            "Content": content,
        }
    )


def reply_channel_welcome(message: InboundMessage) -> str:
    """A follow or scan through an active channel (QR scene) with a welcome reply gets it. At most one indexed
    query, none for a follow without a scene (channels are cached by scene for a few seconds)."""
    welcome = campaigns_selectors.channel_welcome_for_scene(scene=message.scene) if message.scene else ""
    return reply_text(message, welcome) if welcome else SUCCESS


def reply_image(message: InboundMessage, media_id: str) -> str:
    """A passive image reply (a permanent or temporary media_id)."""
    return xml.render(
        {
            "ToUserName": message.openid,
            "FromUserName": message.to_user,
            "CreateTime": int(time.time()),
            "MsgType": "image",
            "Image": {"MediaId": media_id},
        }
    )


def reply_news(message: InboundMessage, articles: list[dict[str, str]]) -> str:
    """A passive article card reply: items with title, description, pic_url and url (at most 1 shown by WeChat)."""
    items = [
        {"Title": a.get("title", ""), "Description": a.get("description", ""), "PicUrl": a.get("pic_url", ""),
         "Url": a.get("url", "")}
        for a in articles[:8]
    ]  # fmt: skip
    return xml.render(
        {
            "ToUserName": message.openid,
            "FromUserName": message.to_user,
            "CreateTime": int(time.time()),
            "MsgType": "news",
            "ArticleCount": len(items),
            "Articles": {"item": items},
        }
    )


@dataclass
class Route:
    record: Callable[..., accounts_services.Recorded] = accounts_services.interaction_record_message
    replies: list[ReplyBuilder] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    reply: ReplyBuilder | None = None  # one builder, put first in `replies` (kept for the existing callers)

    def __post_init__(self) -> None:
        if self.reply is not None and self.reply not in self.replies:
            self.replies.insert(0, self.reply)

    def answer(self, message: InboundMessage) -> str:
        """The first builder's answer that is not "success" or empty; "success" when none answers."""
        for builder in self.replies:
            answer = builder(message)
            if answer and answer != SUCCESS:
                return answer
        return SUCCESS


def profile_fetch_later(interaction: Any) -> None:
    """Fetch the profile (user/info/batchget) about a second later, batched with the other follows of that second."""
    transaction.on_commit(accounts_profiles.profile_fetch_schedule)


def channel_attribute(interaction: Any) -> None:
    """A follow or scan with a channel's scene: touch recorded, first touch kept, the channel's tags applied."""
    campaigns_services.channel_attribute(interaction=interaction)


ROUTES: dict[str, Route] = {
    # Follows: create or reactivate the subscriber, record the follow in the history, reply with the channel's
    # welcome; later the profile fetch and the channel attribution.
    "subscribe": Route(
        record=accounts_services.interaction_record_follow,
        replies=[reply_channel_welcome],
        follow_ups=[profile_fetch_later, channel_attribute],
    ),
    "unsubscribe": Route(record=accounts_services.interaction_record_unfollow),
    # A follower scans a channel's QR code: welcome reply, then the touch is recorded and the channel's tags applied.
    "scan": Route(replies=[reply_channel_welcome], follow_ups=[channel_attribute]),
    # Reports that WeChat sends about our own sends: not something the subscriber did.
    "templatesendjobfinish": Route(record=accounts_services.interaction_record_report),
    "masssendjobfinish": Route(record=accounts_services.interaction_record_system_event),
    "publishjobfinish": Route(record=accounts_services.interaction_record_system_event),
    # Everything else (text, image, voice, video, shortvideo, location, link, miniprogrampage, location
    # events, click, view, subscribe_msg_popup_event, unknown types): the default route, stored and touching
    # the subscriber's last_interaction_at.
}
DEFAULT_ROUTE = Route()


def route_for(kind: str) -> Route:
    return ROUTES.get(kind, DEFAULT_ROUTE)


def register_follow_up(kind: str, handler: FollowUp) -> None:
    route = ROUTES.setdefault(kind, Route())
    if handler not in route.follow_ups:
        route.follow_ups.append(handler)


def register_reply(kind: str, builder: ReplyBuilder, *, before: ReplyBuilder | None = None) -> None:
    """Add a reply builder for the kind: last, or just before `before` when that one is registered. Idempotent."""
    replies = ROUTES.setdefault(kind, Route()).replies
    if builder in replies:
        return
    if before is not None and before in replies:
        replies.insert(replies.index(before), builder)
    else:
        replies.append(builder)


def follow_ups_for(kind: str) -> list[FollowUp]:
    return list(route_for(kind).follow_ups)


def handle(message: InboundMessage) -> str:
    """Record the message (exactly once) and return the passive reply (the stored one for a retry)."""
    route = route_for(message.kind)
    reply = route.answer(message)
    recorded = route.record(message=message, reply=reply, has_follow_ups=bool(route.follow_ups))
    return recorded.reply
