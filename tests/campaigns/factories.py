"""factory_boy factories of the campaigns app: channels, campaigns, conversion types and conversions."""

import factory
from django.utils import timezone

from campaigns.models import Campaign, Channel, ChannelTouch, Conversion, ConversionType
from tests.accounts.factories import SubscriberFactory


class ChannelFactory(factory.django.DjangoModelFactory):
    """A permanent channel (QR code) with its own scene; no WeChat call (ticket and URL are left empty)."""

    class Meta:
        model = Channel

    name = factory.Sequence(lambda n: f"Poster {n}")
    scene_str = factory.Sequence(lambda n: f"poster-{n}")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    name = factory.Sequence(lambda n: f"Campaign {n}")


class ConversionTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConversionType
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"type-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class ConversionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversion

    type = factory.SubFactory(ConversionTypeFactory)
    subscriber = factory.SubFactory(SubscriberFactory)
    external_id = factory.Sequence(lambda n: f"order-{n}")
    occurred_at = factory.LazyFunction(timezone.now)


class ChannelTouchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelTouch

    subscriber = factory.SubFactory(SubscriberFactory)
    channel = factory.SubFactory(ChannelFactory)
    kind = ChannelTouch.Kind.FOLLOW
    at = factory.LazyFunction(timezone.now)
