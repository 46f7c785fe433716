"""Changes of state for channels: creating a channel's QR code on WeChat, and attributing follows and scans."""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import BigIntegerField, Case, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import status

from accounts.models import Interaction, Subscriber, Tag
from accounts.tagging import tag_add
from wechat_crm.exceptions import ApplicationError
from wechat_crm.wechat.errors import WeChatError

from . import tallies
from .attribution import conversions_attribute
from .models import TEMPORARY_MAX_SECONDS, Channel, ChannelTouch
from .summary import summary_refresh

logger = logging.getLogger(__name__)


class WeChatUnavailableError(ApplicationError):
    """WeChat refused or did not answer a call the operator asked for."""

    status_code = status.HTTP_502_BAD_GATEWAY


@dataclass(frozen=True)
class QRCode:
    ticket: str
    url: str
    expires_at: datetime | None


def channel_qrcode_request(*, scene_str: str, kind: str, expire_seconds: int | None, client=None) -> QRCode:
    """Ask WeChat for a QR code with `scene_str` (permanent, or temporary for `expire_seconds`) through the
    client's create_qrcode. Raises ApplicationError."""
    from wechat_crm.wechat.client import get_client

    temporary = kind == Channel.Kind.TEMPORARY
    if temporary and (not expire_seconds or not 60 <= expire_seconds <= TEMPORARY_MAX_SECONDS):
        raise ApplicationError(
            _("A temporary QR code needs an expiry between 60 and %(max)d seconds.") % {"max": TEMPORARY_MAX_SECONDS}
        )
    requested_at = timezone.now()
    try:
        result = (client or get_client()).create_qrcode(
            scene_str=scene_str, expire_seconds=expire_seconds if temporary else None
        )
    except WeChatError as exc:
        logger.warning("QR code request for scene %r failed: %s", scene_str, exc)
        raise WeChatUnavailableError(
            _("WeChat could not create the QR code: %(message)s (errcode %(errcode)s).")
            % {"message": exc.message, "errcode": exc.errcode if exc.errcode is not None else "-"},
            {"errcode": exc.errcode},
        ) from exc
    if not result.ticket or not result.url:
        raise WeChatUnavailableError(_("WeChat's answer to the QR code request has no ticket or URL."))
    expires_at = None
    if temporary:
        expires_at = requested_at + timedelta(seconds=int(result.expire_seconds or expire_seconds or 0))
    return QRCode(ticket=result.ticket, url=result.url, expires_at=expires_at)


@transaction.atomic
def channel_create(
    *,
    name: str,
    scene_str: str,
    kind: str = Channel.Kind.PERMANENT,
    expire_seconds: int | None = None,
    welcome_reply: str = "",
    is_active: bool = True,
    tags: list[Tag] | None = None,
    qrcode: QRCode | None = None,
    client=None,
) -> Channel:
    """Create a channel and its QR code on WeChat (or `qrcode`, when the caller asked WeChat for it already, as the
    admin form does while it validates). Raises ApplicationError for bad input or a WeChat error."""
    channel = Channel(
        name=name,
        scene_str=scene_str,
        kind=kind,
        expire_seconds=expire_seconds if kind == Channel.Kind.TEMPORARY else None,
        welcome_reply=welcome_reply,
        is_active=is_active,
    )
    try:
        channel.full_clean(exclude=["ticket", "url", "expires_at"])
    except ValidationError as exc:
        raise ApplicationError(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()), {"fields": exc.message_dict}
        ) from exc
    if qrcode is None:
        qrcode = channel_qrcode_request(
            scene_str=scene_str, kind=kind, expire_seconds=channel.expire_seconds, client=client
        )
    channel_apply_qrcode(channel=channel, qrcode=qrcode)
    channel.save()
    if tags:
        channel.tags.set(tags)
    return channel


def channel_renew_qrcode(*, channel: Channel, client=None) -> Channel:
    """A new QR code for a temporary channel (same scene, same expiry length), e.g. once the old one expired.
    Raises ApplicationError for a permanent channel (its QR code never expires) or a WeChat error."""
    if channel.kind != Channel.Kind.TEMPORARY:
        raise ApplicationError(_("%(name)s is permanent: its QR code never expires.") % {"name": channel.name})
    qrcode = channel_qrcode_request(
        scene_str=channel.scene_str, kind=channel.kind, expire_seconds=channel.expire_seconds, client=client
    )
    channel_apply_qrcode(channel=channel, qrcode=qrcode)
    channel.save(update_fields=["ticket", "url", "expires_at"])
    return channel


def channel_apply_qrcode(*, channel: Channel, qrcode: QRCode) -> None:
    """Set the QR code's fields on an unsaved (or to be saved) channel."""
    channel.ticket = qrcode.ticket
    channel.url = qrcode.url
    channel.expires_at = qrcode.expires_at


# --- Attribution (a follow-up of subscribe and SCAN interactions, run in Celery) -----------------------------------

_TOUCH_KIND = {Interaction.Kind.SUBSCRIBE: ChannelTouch.Kind.FOLLOW, Interaction.Kind.SCAN: ChannelTouch.Kind.SCAN}


@transaction.atomic
def channels_attribute(*, interactions: Sequence[Any]) -> int:
    """Record the touches of the interactions' channels (by scene): a ChannelTouch row per interaction, the
    subscriber's source channel when it is their first follow, and the channel's tags. A few statements for the
    whole batch; safe to run twice. Interactions of an unknown scene (a QR code made elsewhere) are left as they are.
    Returns how many touches were recorded."""
    touching = [i for i in interactions if i.kind in _TOUCH_KIND and i.scene and i.subscriber_id]
    if not touching:
        return 0
    channels = {
        c.scene_str: c
        for c in Channel.objects.filter(scene_str__in={i.scene for i in touching}).prefetch_related("tags")
    }
    touching = [i for i in touching if i.scene in channels]
    if not touching:
        return 0
    tallies.tally_lock()
    # The channels' counters (campaigns.tallies) count what this call adds: touches not recorded by an earlier run.
    recorded = set(
        ChannelTouch.objects.filter(interaction_id__in=[i.pk for i in touching]).values_list(
            "interaction_id", flat=True
        )
    )
    counted: Counter[tuple[int, str]] = Counter(
        (channels[i.scene].pk, tallies.FOLLOWS)
        for i in touching
        if i.pk not in recorded and _TOUCH_KIND[i.kind] == ChannelTouch.Kind.FOLLOW
    )
    ChannelTouch.objects.bulk_create(
        [
            ChannelTouch(subscriber_id=i.subscriber_id, channel=channels[i.scene], kind=_TOUCH_KIND[i.kind],
                         at=i.created_at, interaction_id=i.pk)
            for i in touching
        ],
        ignore_conflicts=True,
    )  # fmt: skip
    # First touch: only a follow whose scene became the subscriber's source scene, and only once.
    follows = {(i.subscriber_id, i.scene) for i in touching if i.kind == Interaction.Kind.SUBSCRIBE}
    if follows:
        first = Subscriber.objects.filter(
            reduce(operator.or_, (Q(pk=pk, source_scene=scene) for pk, scene in follows)), source_channel__isnull=True
        )
        firsts = list(first.select_for_update().order_by("pk").values_list("pk", "source_scene"))
        Subscriber.objects.filter(pk__in=[pk for pk, _scene in firsts]).update(
            source_channel=Case(
                *[When(source_scene=scene, then=Value(channels[scene].pk)) for scene in {s for _pk, s in follows}],
                output_field=BigIntegerField(),
            )
        )
        counted.update((channels[scene].pk, tallies.FIRST_TOUCHES) for _pk, scene in firsts)
        if firsts:  # the funnel summary keys subscribers by source channel
            summary_refresh(subscriber_ids={pk for pk, _scene in follows})
    tallies.tally_add(counted)
    by_tag: dict[Tag, set[int]] = {}
    for i in touching:
        for tag in channels[i.scene].tags.all():
            by_tag.setdefault(tag, set()).add(i.subscriber_id)
    for tag, subscriber_ids in by_tag.items():
        tag_add(subscribers=subscriber_ids, tag=tag)
    return len(touching)


def channels_attribute_imported(*, openids: list[str]) -> int:
    """Subscribers imported from WeChat (follower sync), whose follow never reached our callback: the channel named
    by their profile's qr_scene_str becomes their source channel (when empty), with a follow touch at their
    subscribe time and the channel's tags; their conversions already stored get the channel. Returns how many were
    attributed."""
    rows = list(
        Subscriber.objects.filter(openid__in=openids, source_channel__isnull=True)
        .exclude(qr_scene_str="")
        .values_list("id", "qr_scene_str", "subscribed_at")
    )
    channels = {
        c.scene_str: c for c in Channel.objects.filter(scene_str__in={r[1] for r in rows}).prefetch_related("tags")
    }
    attributed: list[int] = []
    with transaction.atomic():
        tallies.tally_lock()
        for subscriber_id, scene, subscribed_at in rows:
            channel = channels.get(scene)
            if channel is None:
                continue
            if not Subscriber.objects.filter(pk=subscriber_id, source_channel__isnull=True).update(
                source_channel=channel
            ):
                continue
            summary_refresh(subscriber_ids=[subscriber_id])
            tallies.tally_add({(channel.pk, tallies.FIRST_TOUCHES): 1, (channel.pk, tallies.FOLLOWS): 1})
            ChannelTouch.objects.create(
                subscriber_id=subscriber_id,
                channel=channel,
                kind=ChannelTouch.Kind.FOLLOW,
                at=subscribed_at or timezone.now(),
            )
            for tag in channel.tags.all():
                tag_add(subscribers=[subscriber_id], tag=tag)
            attributed.append(subscriber_id)
        conversions_attribute(subscriber_ids=attributed)
    return len(attributed)


def forwards_attribute(*, interactions: Sequence[Any]) -> int:
    """Follows of people who opened a forwarded tracked link before following (a "link_forward", seen through web
    authorisation): the last such forward's push and content become the subscriber's source push and content,
    when they have none (never overwritten). Two queries for the batch, one UPDATE per subscriber attributed.
    Returns how many were attributed."""
    from content.models import Article, Push

    follows: dict[int, datetime] = {}  # when we received the follow (WeChat's CreateTime is in whole seconds)
    for i in interactions:
        if i.kind == Interaction.Kind.SUBSCRIBE and i.subscriber_id:
            at = max(i.created_at, i.received_at)
            follows[i.subscriber_id] = max(follows.get(i.subscriber_id, at), at)
    if not follows:
        return 0
    forwards = (
        Interaction.objects.filter(
            subscriber_id__in=follows,
            kind=Interaction.Kind.LINK_FORWARD,
            subscriber__source_push__isnull=True,
            subscriber__source_content__isnull=True,
        )
        .order_by("subscriber_id", "created_at")
        .values_list("subscriber_id", "created_at", "data")
    )
    last: dict[int, dict[str, Any]] = {}
    for subscriber_id, at, data in forwards:
        if at <= follows[subscriber_id] and isinstance(data, dict):
            last[subscriber_id] = data
    if not last:
        return 0
    push_ids = {d.get("push_id") for d in last.values()} - {None}
    content_ids = {d.get("content_id") for d in last.values()} - {None}
    pushes = set(Push.objects.filter(pk__in=push_ids).values_list("pk", flat=True))
    contents = set(Article.objects.filter(pk__in=content_ids).values_list("pk", flat=True))
    attributed = 0
    for subscriber_id, data in last.items():
        push = data.get("push_id") if data.get("push_id") in pushes else None
        content = data.get("content_id") if data.get("content_id") in contents else None
        if push is None and content is None:
            continue
        attributed += Subscriber.objects.filter(
            pk=subscriber_id, source_push__isnull=True, source_content__isnull=True
        ).update(source_push_id=push, source_content_id=content)
    return attributed
