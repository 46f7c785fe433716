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
    tracked-link click, all pending, a minute ago (every journey's first step is due when the batch runs, however
    long making the rows took)."""
    now = timezone.now().replace(microsecond=0) - timedelta(minutes=1)
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
        # A follow, two texts, a link click, and +1 for each journey's first step (due at the batch: they run with
        # it).
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


def _texts(subscribers, *, at, content="hello") -> list[int]:
    ids = []
    for subscriber in subscribers:
        row = InteractionFactory(subscriber=subscriber, kind="text", content=content, created_at=at)
        Interaction.objects.filter(pk=row.pk).update(processed_at=None)
        ids.append(row.pk)
    return ids


def test_a_batch_of_messages_takes_a_few_statements_whatever_its_size(automation):
    """The worker's most common batch: messages from subscribers seen before. The claim (which also marks them
    processed), their last_interaction_at (the callback leaves it to the follow-ups), the funnel's settings and
    history, the score, the stage journey's five (journeys, stages, steps, entries already there, none due) and the
    inbox: the same statements for 5 or 100 messages."""
    for n in (5, 100):
        subscribers = SubscriberFactory.create_batch(n)
        now = timezone.now()  # after their follows
        _batch(_texts(subscribers, at=now))  # their first messages: the stage journey entered
        ids = _texts(subscribers, at=now + timedelta(milliseconds=1))
        with CaptureQueriesContext(connection) as queries:
            assert _batch(ids) == n
        # With the test's savepoint and its release; on failure the statements are listed (CI runs without -v).
        assert len(queries) <= 13, "\n".join(q["sql"][:160] for q in queries.captured_queries)
        moved = Subscriber.objects.filter(
            pk__in=[s.pk for s in subscribers], last_interaction_at=now + timedelta(milliseconds=1)
        )
        assert moved.count() == n

    assert ScoreEntry.objects.filter(reason="text").count() == 2 * 105
    assert not Interaction.objects.filter(processed_at__isnull=True).exists()


def test_the_inbox_waits_since_the_first_unanswered_message_across_batches(automation):
    subscriber = SubscriberFactory()
    t0 = timezone.now().replace(microsecond=0) - timedelta(minutes=10)

    _batch(_texts([subscriber], at=t0))
    _batch(_texts([subscriber], at=t0 + timedelta(minutes=1), content="price"))  # answered by the template rule
    _batch(_texts([subscriber], at=t0 + timedelta(minutes=2)) + _texts([subscriber], at=t0 + timedelta(minutes=3)))

    conversation = Conversation.objects.get(subscriber=subscriber)
    assert conversation.unanswered == 3
    assert conversation.waiting_since == t0
    assert conversation.last_inbound_at == t0 + timedelta(minutes=3)
    subscriber.refresh_from_db()
    assert subscriber.score == 4 * 3 + 1  # four texts, and the stage journey's step entered at the first


def test_a_message_batch_run_again_scores_nothing_more(automation):
    subscribers = SubscriberFactory.create_batch(3)
    ids = _texts(subscribers, at=timezone.now() - timedelta(minutes=1))
    _batch(ids)
    scores = dict(Subscriber.objects.values_list("pk", "score"))
    Interaction.objects.filter(pk__in=ids).update(processed_at=None)  # as if its commit had been lost after the work

    _batch(ids)

    assert dict(Subscriber.objects.values_list("pk", "score")) == scores
    assert all(score >= 3 for score in scores.values())
    assert ScoreEntry.objects.filter(interaction_id__in=ids).count() == 3


def test_a_backlog_is_claimed_by_growing_batches_and_each_interaction_once():
    subscriber = SubscriberFactory()
    rows = InteractionFactory.create_batch(750, subscriber=subscriber, kind="text", content="hi")
    Interaction.objects.filter(pk__in=[r.pk for r in rows]).update(processed_at=None)
    seen: list[list[int]] = []

    def run(batch) -> None:
        seen.append([i.pk for i in batch])

    assert follow_ups.interactions_drain(run=run, interaction_ids=[rows[-1].pk]) == 750

    assert [len(batch) for batch in seen] == [100, 200, 400, 50]  # idle-sized first, then twice as many per full one
    assert sorted(pk for batch in seen for pk in batch) == sorted(r.pk for r in rows)
    assert not Interaction.objects.filter(processed_at__isnull=True).exists()


def test_a_lone_interaction_is_claimed_alone():
    subscriber = SubscriberFactory()
    row = InteractionFactory(subscriber=subscriber, kind="text", content="hi")
    Interaction.objects.filter(pk=row.pk).update(processed_at=None)
    seen: list[int] = []

    assert follow_ups.interactions_drain(run=lambda batch: seen.append(len(batch)), interaction_ids=[row.pk]) == 1
    assert seen == [1]
