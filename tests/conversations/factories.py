"""factory_boy factories of the conversations app: auto-reply rules, menus, the inbox, journeys and scores."""

import factory
from django.utils import timezone

from conversations.models import (
    AutoReplyRule,
    Conversation,
    Journey,
    JourneyStep,
    Menu,
    OutboundMessage,
    ScoreRule,
)
from tests.accounts.factories import SubscriberFactory


class AutoReplyRuleFactory(factory.django.DjangoModelFactory):
    """A text reply to an exact text."""

    class Meta:
        model = AutoReplyRule

    name = factory.Sequence(lambda n: f"rule {n}")
    trigger = AutoReplyRule.Trigger.TEXT_EXACT
    pattern = "hello"
    reply_kind = AutoReplyRule.ReplyKind.TEXT
    reply_text = "hi"


class MenuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Menu

    name = factory.Sequence(lambda n: f"Menu {n}")
    buttons = factory.LazyFunction(lambda: [{"type": "click", "name": "Today", "key": "TODAY"}])


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    subscriber = factory.SubFactory(SubscriberFactory)


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    """A queued customer-service text from an operator."""

    class Meta:
        model = OutboundMessage

    subscriber = factory.SubFactory(SubscriberFactory)
    kind = OutboundMessage.Kind.CUSTOM
    source = OutboundMessage.Source.OPERATOR
    text = "hello"
    payload = factory.LazyAttribute(
        lambda o: {"touser": o.subscriber.openid, "msgtype": "text", "text": {"content": o.text}}
    )
    created_at = factory.LazyFunction(timezone.now)


class JourneyFactory(factory.django.DjangoModelFactory):
    """An active journey entered on a follow."""

    class Meta:
        model = Journey

    name = factory.Sequence(lambda n: f"Journey {n}")
    trigger = Journey.Trigger.FOLLOW


class JourneyStepFactory(factory.django.DjangoModelFactory):
    """A first step that changes the score at once (by `score_delta`, 0 unless given)."""

    class Meta:
        model = JourneyStep

    journey = factory.SubFactory(JourneyFactory)
    action = JourneyStep.Action.SCORE


class ScoreRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScoreRule

    kind = "text"
    points = 1
