"""The accounts app's part in what happens on each message and event (the table is wechat_crm.wechat.dispatch).

Recorders run in the callback's request and store the interaction exactly once with its effect on the subscriber.
Follow-ups run in Celery, after commit, on a batch of interactions of the kinds the table gives them.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def profile_fetch_later(interactions: Sequence[Interaction]) -> None:
    """Fetch the profiles (one batch request) about a second later, batched with the other follows of that second."""
    transaction.on_commit(profiles.profile_fetch_schedule)
