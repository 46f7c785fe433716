"""factory_boy factories. Accounts: subscribers, their follow history and interactions."""

import itertools
from datetime import UTC, datetime

import factory
from django.utils import timezone

from accounts.models import FollowEvent, Interaction, Subscriber

_ids = itertools.count(1)


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    openid = factory.Sequence(lambda n: f"oFactory_subscriber_{n:010d}")
    is_following = True
    subscribed_at = factory.LazyFunction(timezone.now)
    last_interaction_at = factory.LazyFunction(timezone.now)


class FollowEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FollowEvent

    subscriber = factory.SubFactory(SubscriberFactory)
    kind = FollowEvent.Kind.FOLLOW
    at = factory.LazyFunction(timezone.now)


class InteractionFactory(factory.django.DjangoModelFactory):
    """A stored text message by default; pass kind/event_key/... for others."""

    class Meta:
        model = Interaction

    subscriber = factory.SubFactory(SubscriberFactory)
    kind = "text"
    msg_id = factory.LazyFunction(lambda: str(10**15 + next(_ids)))
    dedupe_key = factory.LazyAttribute(lambda o: f"msg:{o.msg_id}" if o.msg_id else f"factory:{next(_ids)}")
    content = "hello"
    raw_xml = "<xml></xml>"
    created_at = factory.LazyFunction(lambda: datetime.now(tz=UTC).replace(microsecond=0))
    received_at = factory.LazyFunction(timezone.now)
    processed_at = factory.LazyAttribute(lambda o: o.received_at)
