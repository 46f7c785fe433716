"""Follow-ups run by batches of set-based statements: a batch of 50 interactions from 50 subscribers takes no more
queries than a batch of 5, and every effect (stages, scores, channel touches and tags, journeys, template
auto-replies, the inbox) is the one each interaction would have had alone, once."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import follow_ups, tasks
from accounts.models import Interaction, Subscriber, Tag
from campaigns.models import ChannelTouch
from conversations.models import (
    AutoReplyRule,
    Conversation,
    Journey,
    JourneyEnrollment,
    JourneyStepRun,
    OutboundMessage,
    ScoreEntry,
)
from tests.accounts.factories import InteractionFactory, SubscriberFactory
from tests.campaigns.factories import ChannelFactory
from tests.content.factories import ArticleFactory, MessageTemplateFactory, TopicFactory
from tests.conversations.factories import (
    AutoReplyRuleFactory,
    JourneyFactory,
    JourneyStepFactory,
    ScoreRuleFactory,
)
from wechat_crm.wechat import dispatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def automation():
    """Something for every follow-up to do: score rules, a channel with a tag, follow, stage and topic journeys, a
    template auto-reply, an article with a topic."""
    ScoreRuleFactory(kind="subscribe", points=5)
    ScoreRuleFactory(kind="text", points=3)
    ScoreRuleFactory(kind="link_click", points=4)
    channel = ChannelFactory(scene_str="poster")
    channel.tags.add(Tag.objects.create(name="poster fans"))
    topic = TopicFactory()
    article = ArticleFactory()
    article.topics.add(topic)
    JourneyStepFactory(journey=JourneyFactory(trigger=Journey.Trigger.FOLLOW), score_delta=1)
    JourneyStepFactory(journey=JourneyFactory(trigger=Journey.Trigger.STAGE, stage="followed"), score_delta=1)
    JourneyStepFactory(journey=JourneyFactory(trigger=Journey.Trigger.TOPIC_CLICK, topic=topic), score_delta=1)
    AutoReplyRuleFactory(
        pattern="price", reply_kind=AutoReplyRule.ReplyKind.TEMPLATE, template=MessageTemplateFactory()
    )
    return article


def _pending(n: int, article) -> list[int]:
    """n new subscribers, each with a follow through the channel, a text, a text the template rule answers and a
    tracked-link click, all pending."""
    now = timezone.now().replace(microsecond=0)
    ids = []
    for _ in range(n):
        subscriber = SubscriberFactory(source_scene="poster", followed_at=None)
        second = timedelta(seconds=1)
        rows = [
            InteractionFactory(subscriber=subscriber, kind="subscribe", scene="poster", created_at=now),
            InteractionFactory(subscriber=subscriber, kind="text", content="hello", created_at=now + second),
            InteractionFactory(subscriber=subscriber, kind="text", content="price", created_at=now + 2 * second),
            InteractionFactory(subscriber=subscriber, kind="link_click", data={"content_id": article.pk},
                               created_at=now + 3 * second),
        ]  # fmt: skip
        for row in rows:
            Interaction.objects.filter(pk=row.pk).update(processed_at=None)
        ids += [row.pk for row in rows]
    return ids


def _batch(ids: list[int]) -> int:
    """One batch, as the worker claims it: the follow-ups of the dispatch table, once each."""
    return follow_ups.interactions_process(run=dispatch.follow_ups_run, interaction_ids=ids).done


def test_a_batch_of_50_subscribers_takes_no_more_queries_than_a_batch_of_5(automation, django_assert_max_num_queries):
    small = _pending(5, automation)
    with CaptureQueriesContext(connection) as queries:
        assert _batch(small) == 20
    big = _pending(50, automation)

    with django_assert_max_num_queries(len(queries)):
        assert _batch(big) == 200

    assert not Interaction.objects.filter(processed_at__isnull=True).exists()


def test_the_task_takes_the_other_pending_interactions_by_batches_of_100(automation):
    ids = _pending(30, automation)

    assert tasks.interactions_process(ids[:3]) == 120  # the worker fell behind: this task drains the backlog
    assert tasks.interactions_process(ids[3:6]) == 0  # the next one finds its interactions done

    assert not Interaction.objects.filter(processed_at__isnull=True).exists()


def test_a_batch_has_the_effects_each_interaction_has_alone(automation):
    ids = _pending(3, automation)

    tasks.interactions_process(ids)

    for subscriber in Subscriber.objects.all():
        assert subscriber.followed_at is not None and subscriber.engaged_at is not None
        assert subscriber.source_channel.scene_str == "poster"
        assert list(subscriber.tags.values_list("name", flat=True)) == ["poster fans"]
        # A follow, two texts, a link click, and +1 for each journey's first step that was due at the batch (they
        # run with it): the follow journey's at least (the click's is 3 s after the follow, maybe not due yet).
        ran = JourneyStepRun.objects.filter(enrollment__subscriber=subscriber)
        assert ran.filter(enrollment__journey__trigger=Journey.Trigger.FOLLOW).count() == 1
        assert subscriber.score == 5 + 3 + 3 + 4 + ran.count()
        assert Conversation.objects.get(subscriber=subscriber).unanswered == 1  # the template answered "price"
    assert ChannelTouch.objects.count() == 3
    assert JourneyEnrollment.objects.count() == 3 * 3
    assert OutboundMessage.objects.filter(source=OutboundMessage.Source.AUTO_REPLY).count() == 3


def test_a_batch_delivered_twice_has_its_effects_once(automation):
    ids = _pending(3, automation)

    assert tasks.interactions_process(ids) == 12
    assert tasks.interactions_process(ids) == 0

    assert ScoreEntry.objects.filter(interaction__isnull=False).count() == 12
    assert OutboundMessage.objects.count() == 3
    assert JourneyEnrollment.objects.count() == 9
