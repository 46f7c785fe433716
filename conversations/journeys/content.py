"""A journey step's content: its topic's name, its articles (a chosen one or the topic's best) and its text."""

from __future__ import annotations

from typing import Any

from django.utils.translation import pgettext

from accounts.kinds import InteractionKind as Kind
from accounts.models import Interaction, Subscriber

from ..models import JourneyStep


def _topic_articles(topic_id: int | None, limit: int = 3) -> list[Any]:
    """The best published articles of the topic: the most clicked (tracked link clicks) of the 50 newest."""
    from collections import Counter

    from content.models import Article

    if not topic_id:
        return []
    candidates = list(
        Article.objects.filter(status=Article.Status.PUBLISHED, topics=topic_id).order_by("-published_at", "-id")[:50]
    )
    clicks = Counter(
        Interaction.objects.filter(kind=Kind.LINK_CLICK, data__content_id__in=[a.pk for a in candidates]).values_list(
            "data__content_id", flat=True
        )
    )
    return sorted(candidates, key=lambda a: -clicks.get(a.pk, 0))[:limit]


def _content(step: JourneyStep, topic_id: int | None) -> tuple[str, list[Any], list[int]]:
    """A step's topic name, articles and their topics (for the topic opt-outs)."""
    from content.models import Article, Topic

    topic_name = Topic.objects.filter(pk=topic_id).values_list("name", flat=True).first() or "" if topic_id else ""
    if step.content == JourneyStep.Content.ARTICLE:
        articles = [step.article]
    elif step.content == JourneyStep.Content.TOPIC_BEST:
        articles = _topic_articles(topic_id)
    else:
        articles = []
    topic_ids = {topic_id} if topic_id else set()
    if articles:
        topic_ids |= set(Article.topics.through.objects.filter(article_id__in=[a.pk for a in articles])
                         .values_list("topic_id", flat=True))  # fmt: skip
    return topic_name, articles, sorted(topic_ids)


def _text(step: JourneyStep, subscriber: Subscriber, topic_name: str) -> str:
    """The step's text with {nickname} and {topic}. A message to someone whose name WeChat did not give (a profile
    not fetched in time, or WeChat keeping nicknames back) says a neutral word instead of leaving a gap."""
    nickname = subscriber.nickname
    if not nickname and step.action == JourneyStep.Action.MESSAGE:
        nickname = pgettext("the name in a journey message when WeChat gave none", "friend")
    return step.text.replace("{nickname}", nickname or "").replace("{topic}", topic_name)
