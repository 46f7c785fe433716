"""Saving or deleting an auto-reply rule clears this process's rule cache at once (others within seconds); an erased
subscriber's queued messages are cancelled and their active journeys stop; fetched profiles release the journey
steps that waited for them."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.signals import profiles_fetched, subscriber_erased

from .models import AutoReplyRule, JourneyEnrollment, OutboundMessage


@receiver([post_save, post_delete], sender=AutoReplyRule)
def _rules_changed(**kwargs) -> None:
    from .replies import rules_cache_clear

    rules_cache_clear()


@receiver(subscriber_erased)
def _subscriber_erased(*, subscriber, at, **kwargs) -> int:
    cancelled = OutboundMessage.objects.filter(subscriber=subscriber, status=OutboundMessage.Status.QUEUED).update(
        status=OutboundMessage.Status.FAILED, reason="erased"
    )
    JourneyEnrollment.objects.filter(subscriber=subscriber, status=JourneyEnrollment.Status.ACTIVE).update(
        status=JourneyEnrollment.Status.STOPPED, due_at=None, finished_at=at
    )
    return cancelled


@receiver(profiles_fetched)
def _profiles_fetched(*, subscriber_ids, **kwargs) -> int:
    from .journeys.profile_wait import journeys_on_profiles
    from .outbound import sent_after_commit

    with sent_after_commit():  # the held welcomes go out now, inside the minute after the follow
        return journeys_on_profiles(subscriber_ids=subscriber_ids)
