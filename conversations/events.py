"""The conversations app's part in what happens on each message and event (the table is
wechat_crm.wechat.dispatch): passive replies tried in the request (auto-reply rules, preference keywords), and
follow-ups run in Celery on a batch of committed interactions (lead score, template auto-replies, journeys'
triggers, the inbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accounts.kinds import InteractionKind as Kind

from . import replies, scores, services
from .journeys import entry as journey_entry

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
    """The lead score: each interaction adds its kind's points (ScoreRule), once. A few statements for the batch."""
    scores.scores_add(interactions=interactions)


def template_auto_reply(interactions: Sequence[Any]) -> None:
    """An auto-reply rule that answers with a template message sends it (once per interaction): the rules are matched
    in memory, then one query for the templates and one INSERT for the batch."""
    from content.models import MessageTemplate

    from .models import OutboundMessage

    rules = {i.pk: rule for i in _with_subscriber(interactions) if (rule := _template_rule(i)) is not None}
    if not rules:
        return
    templates = MessageTemplate.objects.in_bulk({rule.template_id for rule in rules.values()})
    sends = [
        services.TemplateSend(subscriber=i.subscriber, template=templates[rules[i.pk].template_id],
                              dedupe_key=f"auto:{i.pk}", at=i.created_at)
        for i in interactions
        if i.pk in rules and rules[i.pk].template_id in templates
    ]  # fmt: skip
    services.templates_send(sends=sends, source=OutboundMessage.Source.AUTO_REPLY)


def journeys_current_stage(interactions: Sequence[Any]) -> None:
    """The stage journeys of the stage each subscriber had at each interaction (after the funnel's follow-up)."""
    journey_entry.journeys_on_current_stages(
        touches=[
            journey_entry.StageTouch(i.subscriber_id, i.created_at, i.subscriber.stage)
            for i in _with_subscriber(interactions)
        ]
    )


def inbox_record(interactions: Sequence[Any]) -> None:
    """Messages wait in the operator inbox, unanswered unless an auto-reply answered them. One statement (two on
    SQLite)."""
    inbound: dict[int, services.Inbound] = {}
    for i in _with_subscriber(interactions):
        answered = i.reply not in ("", "success") or _template_rule(i) is not None
        before = inbound.get(i.subscriber_id, services.Inbound(0, i.created_at))
        first = before.first_unanswered_at
        if not answered:
            first = i.created_at if first is None else min(first, i.created_at)
        inbound[i.subscriber_id] = services.Inbound(
            before.unanswered + (not answered), max(before.last_at, i.created_at), first
        )
    services.conversations_record_inbound(inbound=inbound)


def journeys_follow(interactions: Sequence[Any]) -> None:
    """The follow journeys (of any channel, or of the follow's channel)."""
    from campaigns.models import Channel

    follows = _with_subscriber(interactions)
    scenes = {i.scene for i in follows if i.scene}
    channels = dict(Channel.objects.filter(scene_str__in=scenes).values_list("scene_str", "pk")) if scenes else {}
    journey_entry.journeys_on_follows(
        follows=[journey_entry.Follow(i.subscriber_id, channels.get(i.scene), i.created_at) for i in follows]
    )


def journeys_topic_click(interactions: Sequence[Any]) -> None:
    """The topic journeys of the clicked contents' topics."""
    from content.models import Article

    clicks = [(i, (i.data or {}).get("content_id")) for i in _with_subscriber(interactions)]
    content_ids = {content_id for _i, content_id in clicks if content_id}
    if not content_ids:
        return
    topics: dict[Any, list[int]] = {}
    for article_id, topic_id in Article.topics.through.objects.filter(article_id__in=content_ids).values_list(
        "article_id", "topic_id"
    ):
        topics.setdefault(article_id, []).append(topic_id)
    journey_entry.journeys_on_topic_clicks(
        clicks=[journey_entry.TopicClick(i.subscriber_id, topics[c], i.created_at) for i, c in clicks if topics.get(c)]
    )


# --- After a batch of conversions (campaigns.events.CONVERSION_FOLLOW_UPS) -----------------------------------------


def journeys_conversion(*, first_conversion: dict) -> None:
    """Enrollments marked converted (journey reports); the conversion journeys entered."""
    journey_entry.journeys_on_conversions(first_conversion=first_conversion)
