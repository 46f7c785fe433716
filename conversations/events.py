"""The conversations app's part in what happens on each message and event (the table is
wechat_crm.wechat.dispatch): passive replies tried in the request (auto-reply rules, preference keywords), and
follow-ups run in Celery on a batch of committed interactions (lead score, template auto-replies, journeys'
triggers, the inbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accounts.kinds import InteractionKind as Kind

from . import journeys, replies, services

# --- Passive replies -----------------------------------------------------------------------------------------------

reply_channel_rules = replies.reply_channel_rules  # follow/scan rules that target the scene's channel
reply_rules = replies.reply_rules  # rules without a channel
reply_preferences = replies.reply_preferences  # preference keywords (text) and preference menu keys (click)


# --- Follow-ups ----------------------------------------------------------------------------------------------------


def _template_rule(interaction: Any):
    """The template-message auto-reply rule that answers the interaction, if any (a passive reply answered none)."""
    from campaigns.selectors import channel_welcome_for_scene

    from .models import AutoReplyRule

    kind = interaction.kind
    if kind not in (Kind.TEXT, Kind.CLICK, Kind.SUBSCRIBE, Kind.SCAN):
        return None
    if kind == Kind.TEXT and replies.preference_parse(interaction.content):
        return None
    if kind == Kind.CLICK and replies.preference_from_menu_key(interaction.event_key):
        return None
    fields = {"kind": kind, "content": interaction.content, "event_key": interaction.event_key,
              "scene": interaction.scene, "at": interaction.created_at}  # fmt: skip
    rule = replies.rule_match(**fields, channel_only=True) if interaction.scene else None
    if rule is None and not (interaction.scene and channel_welcome_for_scene(scene=interaction.scene)):
        rule = replies.rule_match(**fields, channel_only=False)
    return rule if rule is not None and rule.reply_kind == AutoReplyRule.ReplyKind.TEMPLATE else None


def _with_subscriber(interactions: Sequence[Any]) -> list[Any]:
    return [i for i in interactions if i.subscriber_id is not None]


def score(interactions: Sequence[Any]) -> None:
    """The lead score: each interaction adds its kind's points (ScoreRule), once."""
    for interaction in _with_subscriber(interactions):
        services.score_interaction(interaction=interaction)


def template_auto_reply(interactions: Sequence[Any]) -> None:
    """An auto-reply rule that answers with a template message sends it (once per interaction)."""
    from accounts.models import Subscriber
    from content.models import MessageTemplate

    from .models import OutboundMessage

    for interaction in _with_subscriber(interactions):
        rule = _template_rule(interaction)
        if rule is None:
            continue
        template = MessageTemplate.objects.filter(pk=rule.template_id).first()
        subscriber = Subscriber.objects.get(pk=interaction.subscriber_id)
        if template is not None:
            services.template_send(subscriber=subscriber, template=template, source=OutboundMessage.Source.AUTO_REPLY,
                                   dedupe_key=f"auto:{interaction.pk}", now=interaction.created_at)  # fmt: skip


def journeys_current_stage(interactions: Sequence[Any]) -> None:
    """The stage journeys of the subscriber's current stage (after the funnel's follow-up moved it)."""
    for interaction in _with_subscriber(interactions):
        journeys.journeys_on_current_stage(subscriber_id=interaction.subscriber_id, now=interaction.created_at)


def inbox_record(interactions: Sequence[Any]) -> None:
    """A message waits in the operator inbox, unanswered unless an auto-reply answered it."""
    for interaction in _with_subscriber(interactions):
        answered = interaction.reply not in ("", "success") or _template_rule(interaction) is not None
        services.conversation_record_inbound(interaction=interaction, answered=answered)


def journeys_follow(interactions: Sequence[Any]) -> None:
    """The follow journeys (of any channel, or of the follow's channel)."""
    from campaigns.models import Channel

    for interaction in _with_subscriber(interactions):
        channel_id = (
            Channel.objects.filter(scene_str=interaction.scene).values_list("pk", flat=True).first()
            if interaction.scene
            else None
        )
        journeys.journeys_on_follow(subscriber_id=interaction.subscriber_id, channel_id=channel_id,
                                    now=interaction.created_at)  # fmt: skip


def journeys_topic_click(interactions: Sequence[Any]) -> None:
    """The topic journeys of the clicked content's topics."""
    from content.models import Article

    for interaction in _with_subscriber(interactions):
        content_id = (interaction.data or {}).get("content_id")
        if not content_id:
            continue
        topic_ids = list(
            Article.topics.through.objects.filter(article_id=content_id).values_list("topic_id", flat=True)
        )
        if topic_ids:
            journeys.journeys_on_topic_click(subscriber_id=interaction.subscriber_id, topic_ids=topic_ids,
                                             now=interaction.created_at)  # fmt: skip


# --- After a batch of conversions (campaigns.events.CONVERSION_FOLLOW_UPS) -----------------------------------------


def journeys_conversion(*, first_conversion: dict) -> None:
    """Enrollments marked converted (journey reports); the conversion journeys entered."""
    journeys.journeys_on_conversions(first_conversion=first_conversion)
