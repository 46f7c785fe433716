"""The accounts app's part in what happens on each message and event (the table is wechat_crm.wechat.dispatch).

Recorders run in the callback's request and store the interaction exactly once with its effect on the subscriber.
Follow-ups run in Celery, after commit, on a batch of interactions of the kinds the table gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction

from . import profiles, services
from .models import Interaction

# --- Recorders -----------------------------------------------------------------------------------------------------

record_message = services.interaction_record_message
record_follow = services.interaction_record_follow
record_unfollow = services.interaction_record_unfollow
record_report = services.interaction_record_report
record_system_event = services.interaction_record_system_event


# --- Follow-ups ----------------------------------------------------------------------------------------------------


def touch(interactions: Sequence[Interaction]) -> None:
    """The subscriber's last_interaction_at moves forward to their newest interaction of the batch (one UPDATE for
    the batch; never backwards, so retries and batches out of order change nothing). The first follow-up of every
    route that the callback records with accounts.record_message: the callback leaves the row of a subscriber we
    hold alone, and what follows in the batch reads the moved value."""
    latest: dict[int, datetime] = {}
    for interaction in interactions:
        pk = interaction.subscriber_id
        if pk is not None and (pk not in latest or latest[pk] < interaction.created_at):
            latest[pk] = interaction.created_at
    services.subscribers_touch(latest=latest)
    cache = Interaction._meta.get_field("subscriber")
    for interaction in interactions:  # the rows the batch loaded (interaction.subscriber) say the same
        subscriber = cache.get_cached_value(interaction, None) if interaction.subscriber_id else None
        if subscriber is not None:
            at = latest[subscriber.pk]
            if subscriber.last_interaction_at is None or subscriber.last_interaction_at < at:
                subscriber.last_interaction_at = at


def profile_fetch_later(interactions: Sequence[Interaction]) -> None:
    """Fetch the profiles (one batch request) about a second later, batched with the other follows of that second."""
    transaction.on_commit(profiles.profile_fetch_schedule)
