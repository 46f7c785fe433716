"""The campaigns app's part in what happens on each message and event (the table is wechat_crm.wechat.dispatch),
and the table of what follows a conversion (conversions are not WeChat events: they arrive through the API).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conversations import events as conversations_events
from wechat_crm.wechat.inbound import SUCCESS, InboundMessage
from wechat_crm.wechat.replies import reply_text

from . import attribution, selectors, services, stages

# --- Passive replies -----------------------------------------------------------------------------------------------


def reply_channel_welcome(message: InboundMessage) -> str:
    """A follow or scan through an active channel (QR scene) with a welcome reply gets it. At most one indexed
    query, none for a follow without a scene (channels are cached by scene for a few seconds)."""
    welcome = selectors.channel_welcome_for_scene(scene=message.scene) if message.scene else ""
    return reply_text(message, welcome) if welcome else SUCCESS


# --- Follow-ups ----------------------------------------------------------------------------------------------------


def stage_follow(interactions: Sequence[Any]) -> None:
    """The funnel's "followed": the first follow is kept (one statement for the batch)."""
    stages.stages_on_follows(interactions)


def stage_advance(interactions: Sequence[Any]) -> None:
    """The funnel's "engaged" (tracked-link click, or menu click if the settings say so) and "interactive" (a few
    statements for the batch, none when every subscriber reached both)."""
    stages.stages_on_interactions(interactions)


def channel_attribute(interactions: Sequence[Any]) -> None:
    """A follow or scan with a channel's scene: the touch recorded, the first touch kept, the channel's tags applied
    (a few statements for the batch)."""
    services.channels_attribute(interactions=interactions)


def forward_attribute(interactions: Sequence[Any]) -> None:
    """A follow of someone a forwarded tracked link reached first: the forward's push and content become the
    follow's source (one or two statements for the batch)."""
    services.forwards_attribute(interactions=interactions)


def conversion_attribute(interactions: Sequence[Any]) -> None:
    """After the channel attribution of follows: the subscribers' conversions written before it (a purchase posted
    right after the follow) get the channel, and their last touch derived again (one query when none converted)."""
    attribution.conversions_attribute(subscriber_ids={i.subscriber_id for i in interactions if i.subscriber_id})


def conversion_reattribute_clicked(interactions: Sequence[Any]) -> None:
    """A tracked-link click stored after a conversion that happened later: that conversion's last touch derived again
    (one query when the clickers have no conversion since their click, nearly always)."""
    clicked: dict[int, Any] = {}
    for interaction in interactions:  # oldest first
        clicked.setdefault(interaction.subscriber_id, interaction.created_at)
    clicked.pop(None, None)
    attribution.conversions_reattribute_clicked(clicked=clicked)


# --- Conversions ---------------------------------------------------------------------------------------------------


def stage_convert(*, first_conversion: dict) -> None:
    """The funnel's "converted": subscriber id -> earliest conversion time of the batch."""
    stages.stages_convert(first_conversion=first_conversion)


# What follows a batch of conversions recorded by campaigns.conversions.conversions_record, in this order. Each
# takes first_conversion: {subscriber id: the earliest conversion time of the batch}.
CONVERSION_FOLLOW_UPS = (
    stage_convert,  # the funnel's "converted" (stages never go back)
    conversations_events.journeys_conversion,  # enrollments marked converted; the conversion journeys entered
)
