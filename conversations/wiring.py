"""What this app adds to the callback's dispatch table (wechat_crm.wechat.dispatch): reply builders in order, and
one follow-up per subscriber-originated kind (inbox, lead score, template auto-replies, journey triggers)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

FOLLOW_UP_KINDS = ("text", "image", "voice", "video", "shortvideo", "location", "link", "miniprogrampage",
                   "click", "view", "subscribe", "scan", "link_click")  # fmt: skip


def register() -> None:
    from wechat_crm.wechat import dispatch

    from . import replies

    for kind in ("subscribe", "scan"):
        # A rule that targets the channel beats the channel's own welcome; other rules come after it.
        dispatch.register_reply(kind, replies.reply_channel_rules, before=dispatch.reply_channel_welcome)
        dispatch.register_reply(kind, replies.reply_rules)
    for kind in ("text", "click"):
        dispatch.register_reply(kind, replies.reply_preferences)
        dispatch.register_reply(kind, replies.reply_rules)
    for kind in FOLLOW_UP_KINDS:
        dispatch.register_follow_up(kind, conversation_follow_up)


def _template_rule(interaction: Any):
    from campaigns.selectors import channel_welcome_for_scene

    from . import replies
    from .models import AutoReplyRule

    kind = interaction.kind
    if kind not in ("text", "click", "subscribe", "scan"):
        return None
    if kind == "text" and replies.preference_parse(interaction.content):
        return None
    if kind == "click" and replies.preference_from_menu_key(interaction.event_key):
        return None
    fields = {"kind": kind, "content": interaction.content, "event_key": interaction.event_key,
              "scene": interaction.scene, "at": interaction.created_at}  # fmt: skip
    rule = replies.rule_match(**fields, channel_only=True) if interaction.scene else None
    if rule is None and not (interaction.scene and channel_welcome_for_scene(scene=interaction.scene)):
        rule = replies.rule_match(**fields, channel_only=False)
    return rule if rule is not None and rule.reply_kind == AutoReplyRule.ReplyKind.TEMPLATE else None


def conversation_follow_up(interaction: Any) -> None:
    """After the callback: the lead score, the inbox, a template auto-reply, the journeys' triggers."""
    from accounts.models import Subscriber
    from campaigns.models import Channel
    from content.models import Article, MessageTemplate

    from . import journeys, services
    from .models import OutboundMessage

    if interaction.subscriber_id is None:
        return
    services.score_interaction(interaction=interaction)
    rule = _template_rule(interaction)
    if rule is not None:
        template = MessageTemplate.objects.filter(pk=rule.template_id).first()
        subscriber = Subscriber.objects.get(pk=interaction.subscriber_id)
        if template is not None:
            services.template_send(subscriber=subscriber, template=template, source=OutboundMessage.Source.AUTO_REPLY,
                                   dedupe_key=f"auto:{interaction.pk}", now=interaction.created_at)  # fmt: skip
    journeys.journeys_on_current_stage(subscriber_id=interaction.subscriber_id, now=interaction.created_at)
    if interaction.kind in services.MESSAGE_KINDS:
        answered = interaction.reply not in ("", "success") or rule is not None
        services.conversation_record_inbound(interaction=interaction, answered=answered)
    if interaction.kind == "subscribe":
        channel_id = (
            Channel.objects.filter(scene_str=interaction.scene).values_list("pk", flat=True).first()
            if interaction.scene
            else None
        )
        journeys.journeys_on_follow(subscriber_id=interaction.subscriber_id, channel_id=channel_id,
                                    now=interaction.created_at)  # fmt: skip
    elif interaction.kind == "link_click":
        content_id = (interaction.data or {}).get("content_id")
        if content_id:
            topic_ids = list(
                Article.topics.through.objects.filter(article_id=content_id).values_list("topic_id", flat=True)
            )
            if topic_ids:
                journeys.journeys_on_topic_click(subscriber_id=interaction.subscriber_id, topic_ids=topic_ids,
                                                 now=interaction.created_at)  # fmt: skip
