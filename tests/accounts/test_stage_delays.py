"""The funnel's step delays (Subscriber.*_delay_us) follow the stage times as they are written, to the microsecond."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Subscriber
from campaigns.stages import Engagement, stages_convert, stages_engage, stages_follow
from tests.accounts.factories import SubscriberFactory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _delays(pk: int) -> tuple:
    return Subscriber.objects.filter(pk=pk).values_list(
        "engaged_delay_us", "interactive_delay_us", "converted_delay_us"
    )[0]


@pytest.mark.django_db
def test_delays_follow_the_stage_times_as_they_are_reached():
    subscriber = SubscriberFactory()
    stages_follow(first_follow={subscriber.pk: T0})
    assert _delays(subscriber.pk) == (None, None, None)

    stages_engage(engagements={subscriber.pk: Engagement(at=T0 + timedelta(seconds=90, microseconds=250))})
    assert _delays(subscriber.pk) == (90_000_250, None, None)

    # Converted without being interactive: no delay to conversion until the step before it is reached.
    stages_convert(first_conversion={subscriber.pk: T0 + timedelta(days=2)})
    assert _delays(subscriber.pk) == (90_000_250, None, None)

    Subscriber.objects.filter(pk=subscriber.pk).update(interactive_at=T0 + timedelta(days=1))
    assert _delays(subscriber.pk) == (90_000_250, 86_400_000_000 - 90_000_250, 86_400_000_000)


@pytest.mark.django_db
def test_a_stage_reached_before_the_previous_one_counts_from_the_previous_one():
    subscriber = SubscriberFactory(followed_at=T0)
    # Engaged (a menu click stored late) before the first follow, converted before engaged.
    Subscriber.objects.filter(pk=subscriber.pk).update(
        engaged_at=T0 - timedelta(hours=1),
        interactive_at=T0 + timedelta(hours=3),
        converted_at=T0 + timedelta(hours=2),
    )
    assert _delays(subscriber.pk) == (0, 3 * 3_600_000_000, 0)
