"""WeChat's customer-service window, per subscriber, from their interactions and what was sent since."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import kinds
from accounts.models import Interaction, Subscriber
from content.models import Delivery, Push

from ..models import OutboundMessage
from .terms import EVENT_LIMIT, EVENT_WINDOW, MESSAGE_LIMIT, MESSAGE_WINDOW, Reason

# --- the window ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    allowed: bool
    remaining: int
    reason: str  # the operator's words ("" when open)
    closes_at: dt.datetime | None = None
    code: str = ""  # Reason.OUTSIDE_WINDOW or Reason.WINDOW_LIMIT when closed

    def __iter__(self):  # allowed, remaining, reason = window(...)
        return iter((self.allowed, self.remaining, self.reason))


def _closed(code: str) -> Window:
    if code == Reason.WINDOW_LIMIT:
        text = _("WeChat's limit of customer-service messages since the subscriber's last message is reached. Wait "
                 "for them to write again, or send a template message.")  # fmt: skip
    else:
        text = _("The subscriber has not written to us in the last 48 hours: WeChat allows no customer-service "
                 "message now. Send a template message instead.")  # fmt: skip
    return Window(False, 0, text, None, code)


def windows(
    *,
    subscriber_ids: Collection[int],
    now: dt.datetime | None = None,
    exclude_message_id: int | None = None,
    exclude_push_id: int | None = None,
    before: Mapping[int, int] | None = None,
) -> dict[int, Window]:
    """WeChat's customer-service window of each subscriber, from what they did (accounts.Interaction, written by the
    callback, so never late) and the customer-service messages sent since (operator, auto-reply and journey
    messages, and customer-service pushes; failed and skipped ones do not count). At most three queries.

    `exclude_message_id`: the OutboundMessage about to be sent (it counts messages queued before it, not itself);
    `exclude_push_id`: the push being sent (its own claimed deliveries do not count);
    `before`: {subscriber id: message id} for a page of messages, each counting only its subscriber's messages
    queued before it."""
    now = now or timezone.now()
    ids = list(subscriber_ids)
    result = {pk: _closed(Reason.OUTSIDE_WINDOW) for pk in ids}
    if not ids:
        return result
    recent = Interaction.objects.filter(
        subscriber_id__in=ids, created_at__gte=now - MESSAGE_WINDOW, created_at__lte=now, kind__in=kinds.WINDOW_OPENING
    )
    opened = recent.values("subscriber_id").annotate(
        message=Max("created_at", filter=Q(kind__in=kinds.MESSAGES)),
        event=Max("created_at", filter=Q(kind__in=kinds.WINDOW_OPENING_EVENTS)),
    )
    spans: dict[int, list[tuple[dt.datetime, dt.datetime, int]]] = {}
    for row in opened:
        span = []
        if row["message"] is not None:
            span.append((row["message"], row["message"] + MESSAGE_WINDOW, MESSAGE_LIMIT))
        if row["event"] is not None and row["event"] + EVENT_WINDOW > now:
            span.append((row["event"], row["event"] + EVENT_WINDOW, EVENT_LIMIT))
        if span:
            spans[row["subscriber_id"]] = span
    if not spans:
        return result
    since = min(start for span in spans.values() for start, _e, _l in span)
    sent: dict[int, list[dt.datetime]] = {pk: [] for pk in spans}
    messages = OutboundMessage.objects.filter(
        Q(created_at__gte=since) | Q(sent_at__gte=since), subscriber_id__in=list(spans),
        kind=OutboundMessage.Kind.CUSTOM,
    ).exclude(status__in=(OutboundMessage.Status.FAILED, OutboundMessage.Status.SKIPPED))  # fmt: skip
    if exclude_message_id is not None:
        messages = messages.filter(pk__lt=exclude_message_id)
    for pk, sub_id, created_at, sent_at in messages.values_list("pk", "subscriber_id", "created_at", "sent_at"):
        if before is not None and sub_id in before and pk >= before[sub_id]:
            continue
        sent[sub_id].append(max(created_at, sent_at or created_at))
    from content.services.deliveries.rows import COUNTED

    pushed = Delivery.objects.filter(
        subscriber_id__in=list(spans), channel=Push.Channel.CUSTOM, claimed_at__gte=since, status__in=COUNTED
    )
    if exclude_push_id is not None:
        pushed = pushed.exclude(push_id=exclude_push_id)
    for sub_id, claimed_at in pushed.values_list("subscriber_id", "claimed_at"):
        sent[sub_id].append(claimed_at)
    for pk, span in spans.items():
        remaining, closes_at = max(
            ((limit - sum(1 for at in sent[pk] if at >= start), end) for start, end, limit in span),
            key=lambda x: x[0],
        )
        if remaining <= 0:
            result[pk] = _closed(Reason.WINDOW_LIMIT)
        else:
            result[pk] = Window(True, remaining, "", closes_at)
    return result


def window(*, subscriber: Subscriber, now: dt.datetime | None = None, exclude_message_id: int | None = None) -> Window:
    """One subscriber's customer-service window (see `windows`)."""
    return windows(subscriber_ids=[subscriber.pk], now=now, exclude_message_id=exclude_message_id)[subscriber.pk]
