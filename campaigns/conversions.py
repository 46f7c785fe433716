"""Conversions reported by other systems: validated one by one, inserted in bulk, exactly once per (type, external_id),
with last-touch attribution and the subscribers' converted stage updated in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _
from rest_framework import status

from accounts.models import Subscriber
from accounts.webauth import ref_read
from wechat_crm.exceptions import ApplicationError

from .attribution import LastTouch, last_touches, subscribers_for_attribution
from .events import CONVERSION_FOLLOW_UPS
from .funnel_serializers import ConversionInputSerializer
from .models import CONVERSION_BATCH_MAX, Conversion, ConversionType

BATCH_MAX = CONVERSION_BATCH_MAX


class ConversionBatchTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


@dataclass
class ConversionInput:
    """One validated item (the API's serializer produces these)."""

    index: int
    type: str
    external_id: str
    occurred_at: datetime
    openid: str = ""
    unionid: str = ""
    ref: str = ""  # validated by the serializer: a signed reference to the subscriber (accounts.webauth)
    value: Decimal = Decimal("0")
    currency: str = "CNY"
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class IngestResult:
    created: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    received: int = 0


def conversion_events(body: Any) -> list[Any]:
    """The events of a request body: one event, a list of events, or {"events": [...]}.

    Raises ApplicationError (400) for anything else or no events, ConversionBatchTooLarge (413) above BATCH_MAX."""
    if isinstance(body, dict) and "events" in body:
        events = body["events"]
        if not isinstance(events, list):
            raise ApplicationError(_("`events` must be a list."))
    elif isinstance(body, list):
        events = body
    elif isinstance(body, dict):
        events = [body]
    else:
        raise ApplicationError(_('Send one event or {"events": [...]}.'))
    if not events:
        raise ApplicationError(_("No events."))
    if len(events) > BATCH_MAX:
        raise ConversionBatchTooLarge(
            _("At most %(max)d events per request; this one has %(n)d.") % {"max": BATCH_MAX, "n": len(events)},
            {"max": BATCH_MAX, "received": len(events)},
        )
    return events


def conversion_inputs(events: Sequence[Any]) -> tuple[list[ConversionInput], list[dict[str, Any]]]:
    """Each event validated on its own: the valid ones as ConversionInput, the others as errors with their index."""
    items: list[ConversionInput] = []
    errors: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            errors.append({"index": index, "message": _("An event must be an object.")})
            continue
        item = ConversionInputSerializer(data=event)
        if item.is_valid():
            items.append(ConversionInput(index=index, **item.validated_data))
        else:
            detail = item.errors
            message = "; ".join(
                f"{name}: {' '.join(str(m) for m in msgs)}" if name != "non_field_errors" else " ".join(msgs)
                for name, msgs in detail.items()
            )
            errors.append({"index": index, "message": message, "fields": detail})
    return items, errors


def conversions_record_batch(*, body: Any) -> IngestResult:
    """Record a request's conversions (the API's POST /api/conversions/): unwrap the envelope, validate each event,
    store the valid ones (conversions_record). Raises ApplicationError when the body is not a batch at all."""
    events = conversion_events(body)
    items, errors = conversion_inputs(events)
    result = conversions_record(items=items, errors=errors)
    result.received = len(events)
    return result


@transaction.atomic
def conversions_record(*, items: Sequence[ConversionInput], errors: list[dict[str, Any]] | None = None) -> IngestResult:
    """Store the valid items (unknown subscriber or type becomes a per-item error), skip those already stored, and
    move their subscribers to `converted`. A handful of queries whatever the batch size."""
    result = IngestResult(errors=list(errors or []))
    types = {t.slug: t for t in ConversionType.objects.filter(slug__in={i.type for i in items}, is_active=True)}
    openids = {i.openid for i in items if i.openid}
    unionids = {i.unionid for i in items if i.unionid and not i.openid}
    refs = {i.ref: ref_read(i.ref) for i in items if i.ref and not i.openid and not i.unionid}
    subscribers: dict[tuple[str, str], Subscriber] = {}
    if openids or unionids or refs:
        for sub in subscribers_for_attribution(
            Subscriber.objects.filter(Q(openid__in=openids) | Q(unionid__in=unionids) | Q(pk__in=set(refs.values())))
        ):
            subscribers[("openid", sub.openid)] = sub
            subscribers[("id", str(sub.pk))] = sub
            if sub.unionid:
                subscribers.setdefault(("unionid", sub.unionid), sub)
    valid: list[tuple[ConversionInput, Subscriber, ConversionType]] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        if item.openid:
            key = ("openid", item.openid)
        elif item.unionid:
            key = ("unionid", item.unionid)
        else:
            key = ("id", str(refs[item.ref]))
        sub = subscribers.get(key)
        ctype = types.get(item.type)
        if ctype is None:
            result.errors.append({"index": item.index, "message": _("Unknown conversion type: %s.") % item.type})
        elif sub is None:
            message = (
                _("No subscriber with this openid or unionid.")
                if key[0] != "id"
                else _("The person this ref names is no longer a subscriber.")
            )
            result.errors.append({"index": item.index, "message": message})
        elif (item.type, item.external_id) in seen:
            result.duplicates += 1
        else:
            seen.add((item.type, item.external_id))
            valid.append((item, sub, ctype))
    result.errors.sort(key=lambda e: e["index"])
    if not valid:
        return result

    already = set(
        Conversion.objects.filter(
            type__slug__in={i.type for i, _s, _t in valid}, external_id__in={i.external_id for i, _s, _t in valid}
        ).values_list("type__slug", "external_id")
    )
    fresh = [(i, s, t) for i, s, t in valid if (i.type, i.external_id) not in already]
    result.duplicates += len(valid) - len(fresh)
    touches = last_touches(pairs=[(s.pk, i.occurred_at) for i, s, _t in fresh])
    rows = []
    first: dict[int, datetime] = {}
    for item, sub, ctype in fresh:
        touch = touches.get((sub.pk, item.occurred_at), LastTouch(None, None))
        rows.append(
            Conversion(
                type=ctype,
                subscriber_id=sub.pk,
                external_id=item.external_id,
                value=item.value,
                currency=item.currency,
                occurred_at=item.occurred_at,
                attributes=item.attributes,
                # First touch as known now; the follow's follow-up fills it if it comes later (campaigns.attribution).
                channel_id=sub.source_channel_id or sub.scene_channel_id,
                push_id=touch.push_id,
                content_id=touch.content_id,
            )
        )
        if sub.pk not in first or item.occurred_at < first[sub.pk]:
            first[sub.pk] = item.occurred_at
    Conversion.objects.bulk_create(rows, ignore_conflicts=True, batch_size=BATCH_MAX)
    result.created = len(rows)
    for follow_up in CONVERSION_FOLLOW_UPS:
        follow_up(first_conversion=first)
    return result
