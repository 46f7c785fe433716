"""A subscriber's story, newest first: follows and unfollows, messages and menu clicks, tracked-link clicks, pushes
received, our replies, conversions, funnel stages reached and score changes. Read for the subscriber's admin page.

Each source is read with one query limited to its latest `limit` rows (every one through an index on the
subscriber), so a subscriber with a million interactions costs the same as one with ten. It lives in the project
package because it reads every app (accounts must not import the apps built on it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.translation import gettext as _

from accounts import kinds
from accounts.kinds import InteractionKind as Kind
from accounts.models import Subscriber

STAGE_COLUMNS = (
    ("followed_at", "followed"),
    ("engaged_at", "engaged"),
    ("interactive_at", "interactive"),
    ("converted_at", "converted"),
)
# Follows and unfollows come from the follow history; WeChat's reports about our sends are not the subscriber's.
NOT_SHOWN = kinds.SYSTEM_REPORTS | {Kind.SUBSCRIBE, Kind.UNSUBSCRIBE}


def _event(at: datetime | None, kind: str, icon: str, title: str, detail: str = "") -> dict[str, Any]:
    return {"at": at, "kind": kind, "icon": icon, "title": title, "detail": detail}


def subscriber_timeline(*, subscriber: Subscriber, limit: int = 50) -> list[dict[str, Any]]:
    """At most `limit` entries, newest first: `at`, `kind` (follow, unfollow, message, click, link_click, consent,
    push, reply, conversion, stage, score), a Material Symbols `icon`, a `title` and a `detail`."""
    from accounts.models import FollowEvent
    from campaigns.models import Conversion
    from content.models import Delivery
    from conversations.models import OutboundMessage, ScoreEntry

    events: list[dict[str, Any]] = []
    for f in FollowEvent.objects.filter(subscriber=subscriber).order_by("-at", "-id")[:limit]:
        follow = f.kind == FollowEvent.Kind.FOLLOW
        scene = _("scene %(scene)s") % {"scene": f.scene} if f.scene else ""
        events.append(_event(f.at, "follow" if follow else "unfollow", "person_add" if follow else "person_remove",
                             _("Followed") if follow else _("Unfollowed"), scene))  # fmt: skip
    interactions = (
        subscriber.interactions.exclude(kind__in=NOT_SHOWN)
        .only("subscriber_id", "kind", "content", "event_key", "created_at", "data", "url")
        .order_by("-created_at", "-id")[:limit]
    )
    for i in interactions:
        if i.kind in (Kind.LINK_CLICK, Kind.LINK_FORWARD):
            data = i.data if isinstance(i.data, dict) else {}
            if i.kind == Kind.LINK_FORWARD:
                title = _("Opened a link forwarded to them (before following)")
            elif data.get("shared_by"):
                title = _("Opened a tracked link forwarded by another subscriber")
            else:
                title = _("Opened a tracked link")
            events.append(_event(i.created_at, "link_click", "ads_click", title,
                                 str(data.get("url") or data.get("content_title") or i.url or "")))  # fmt: skip
        elif i.kind in kinds.NOTICE_CONSENT_EVENTS:
            from wechat_crm.wechat.inbound import notice_items

            items = notice_items(i.kind, i.data if isinstance(i.data, dict) else {})
            accepted = ", ".join(item.template_id for item in items if item.status == "accept")
            rejected = ", ".join(item.template_id for item in items if item.status == "reject")
            title = (_("Answered the subscription-notice popup") if i.kind == Kind.SUBSCRIBE_MSG_POPUP_EVENT
                     else _("Withdrew consent to subscription notices"))  # fmt: skip
            detail = "; ".join(
                part for part in (accepted and _("accepted %(ids)s") % {"ids": accepted},
                                  rejected and _("rejected %(ids)s") % {"ids": rejected}) if part
            )  # fmt: skip
            events.append(_event(i.created_at, "consent", "notifications", title, detail))
        elif i.kind in kinds.MENU_CLICKS or i.kind == Kind.SCAN:
            events.append(_event(i.created_at, "click", "touch_app", _("Menu or QR code: %(kind)s") % {"kind": i.kind},
                                 i.event_key))  # fmt: skip
        else:
            events.append(_event(i.created_at, "message", "chat", _("Message (%(kind)s)") % {"kind": i.kind},
                                 i.content))  # fmt: skip
    deliveries = (
        Delivery.objects.filter(subscriber=subscriber)
        .select_related("push")
        .only("status", "sent_at", "created_at", "reason", "push__name")
        .order_by("-created_at", "-id")[:limit]
    )
    for d in deliveries:
        events.append(_event(d.sent_at or d.created_at, "push", "campaign", _("Push: %(name)s") % {"name": d.push.name},
                             d.get_status_display()))  # fmt: skip
    for o in OutboundMessage.objects.filter(subscriber=subscriber).order_by("-created_at", "-id")[:limit]:
        events.append(_event(o.created_at, "reply", "reply", _("We wrote: %(kind)s") % {"kind": o.get_kind_display()},
                             f"{o.text} · {o.get_status_display()}"))  # fmt: skip
    conversions = Conversion.objects.filter(subscriber=subscriber).select_related("type")
    for c in conversions.order_by("-occurred_at", "-id")[:limit]:
        events.append(_event(c.occurred_at, "conversion", "paid", _("Conversion: %(type)s") % {"type": c.type.name},
                             f"{c.value} {c.currency}"))  # fmt: skip
    stage_names = dict(Subscriber.Stage.choices)
    for column, stage in STAGE_COLUMNS:
        at = getattr(subscriber, column)
        if at is not None:
            events.append(_event(at, "stage", "flag", _("Stage reached: %(stage)s") % {"stage": stage_names[stage]}))
    for s in ScoreEntry.objects.filter(subscriber=subscriber).order_by("-at", "-id")[:limit]:
        events.append(_event(s.at, "score", "trending_up" if s.points >= 0 else "trending_down",
                             _("Score %(points)+d") % {"points": s.points}, s.reason))  # fmt: skip
    events.sort(key=lambda e: e["at"] or datetime.min.replace(tzinfo=subscriber.created_at.tzinfo), reverse=True)
    return events[:limit]
