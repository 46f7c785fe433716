"""Reads of the inbox that are more than a get by key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F
from django.utils import timezone

from accounts.models import Interaction, Subscriber

from .models import Conversation, OutboundMessage
from .services import cs_window


def inbox_summary(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """How many conversations wait for an answer, and the one that has waited longest (with how long): two index
    scans on the stored `waiting_since`, kept by the inbox follow-up and cleared by an answer."""
    now = now or timezone.now()
    waiting = Conversation.objects.filter(unanswered__gt=0)
    oldest = waiting.select_related("subscriber").order_by(F("waiting_since").asc(nulls_last=True), "pk").first()
    return {
        "unanswered": waiting.count(),
        "oldest": None
        if oldest is None
        else {
            "conversation": oldest.pk,
            "name": str(oldest.subscriber),
            "messages": oldest.unanswered,
            "since": oldest.waiting_since,
            "waiting_seconds": int((now - oldest.waiting_since).total_seconds()) if oldest.waiting_since else None,
        },
    }


MEDIA_KINDS = {"image": "image", "voice": "voice", "video": "video", "shortvideo": "video"}


def _recognition(interaction: Interaction) -> str:
    """WeChat's speech recognition of a voice message (when the account has it on)."""
    data = interaction.data if isinstance(interaction.data, dict) else {}
    return str(data.get("Recognition") or "")


def thread_items(*, subscriber: Subscriber, limit: int = 30) -> list[dict[str, Any]]:
    """The subscriber's latest messages and events and our latest outbound messages, oldest first. Each item has a
    stable `key`, and for images, voice and video the `media` to show (`interaction` id, WeChat `media_id`, the
    stored `pic_url`, the voice `format`)."""
    # WeChat's reports about our own sends (TEMPLATESENDJOBFINISH ...) are not part of the conversation.
    interactions = list(
        subscriber.interactions.exclude(kind__endswith="jobfinish").order_by("-created_at", "-id")[:limit]
    )
    outbound = list(subscriber.outbound_messages.order_by("-created_at", "-id")[:limit])
    items = []
    for i in interactions:
        media = None
        if i.kind in MEDIA_KINDS and (i.media_id or i.pic_url):
            media = {"type": MEDIA_KINDS[i.kind], "interaction": i.pk, "media_id": i.media_id, "pic_url": i.pic_url,
                     "format": i.format}  # fmt: skip
        items.append(
            {
                "key": f"in-{i.pk}",
                "at": i.created_at,
                "inbound": True,
                "kind": i.kind,
                "text": i.content or i.event_key or _recognition(i) or ("" if media else i.kind),
                "media": media,
                "reply": i.reply if i.reply not in ("", "success") else "",
            }
        )
    for o in outbound:
        items.append(
            {
                "key": f"out-{o.pk}",
                "at": o.created_at,
                "inbound": False,
                "kind": o.get_kind_display(),
                "text": o.text,
                "status": o.status,
                "status_display": o.get_status_display(),
                "final": o.status not in (OutboundMessage.Status.QUEUED, OutboundMessage.Status.SENDING),
                "reason": o.reason or _policy_label(o.skip_reason),  # a skip: the send policy's reason
                "errcode": o.errcode,
            }
        )
    items.sort(key=lambda item: (item["at"], item["key"]))
    return items


def _policy_label(code: str) -> str:
    from content.reasons import reason_label

    return reason_label(code)


def window_state(*, subscriber: Subscriber, now: dt.datetime | None = None) -> dict[str, Any]:
    """WeChat's customer-service window for the subscriber: open or closed, messages left, when it closes and how
    long that leaves."""
    now = now or timezone.now()
    window = cs_window(subscriber, now)
    seconds_left = int((window.closes_at - now).total_seconds()) if window.allowed and window.closes_at else 0
    return {
        "allowed": window.allowed,
        "remaining": window.remaining,
        "reason": str(window.reason),
        "closes_at": window.closes_at if window.allowed else None,
        "seconds_left": max(seconds_left, 0),
    }


def interaction_media(*, interaction: Interaction) -> tuple[bytes, str]:
    """The image or voice of an inbound message, from WeChat (temporary media, kept 3 days): bytes, content type."""
    from wechat_crm.wechat.client import get_client

    return get_client().media_get(media_id=interaction.media_id)
