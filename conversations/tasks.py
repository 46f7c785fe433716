"""Celery tasks of conversations. Routed to `inbound` (replies must not wait behind a push); see celery.py."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="conversations.tasks.outbound_send_page")
def outbound_send_page_task() -> dict:
    """Send the due queued messages a chunk at a time (conversations.outbound); past the page's limit a fresh task
    goes on, and one runs again when the first message put back to queued (quiet hours, retry later) is due."""
    from .outbound import outbound_send_due

    return dict(outbound_send_due().counts)


@shared_task(name="conversations.tasks.outbound_send", bind=True, max_retries=10)
def outbound_send_task(self, message_id: int) -> str:
    """Send one queued message (tasks queued before the page task existed). Safe to run twice (claimed first)."""
    from .services import outbound_send

    result = outbound_send(message_id=message_id)
    if result.defer_until is not None:  # the send policy said LATER (quiet hours): sent then
        outbound_send_task.apply_async((message_id,), eta=result.defer_until)
        return "deferred"
    if result.status == "queued":
        raise self.retry(countdown=min(result.retry_after or 30.0, 300.0))
    return result.status


@shared_task(name="conversations.tasks.journeys_advance")
def journeys_advance_task() -> int:
    """Every minute (and right after an enrollment): run the due journey steps."""
    from .journeys.steps import journeys_advance

    return journeys_advance()


@shared_task(name="conversations.tasks.journeys_enter_dormant")
def journeys_enter_dormant_task() -> int:
    """Hourly: enter dormant subscribers into the dormant journeys."""
    from .journeys.entry import journeys_enter_dormant

    return journeys_enter_dormant()


@shared_task(name="conversations.tasks.outbound_resend_stuck")
def outbound_resend_stuck_task() -> int:
    from .services import outbound_resend_stuck

    return outbound_resend_stuck()


@shared_task(name="conversations.tasks.scores_decay")
def scores_decay_task() -> int:
    """Daily: recompute the lead scores with their decay."""
    from .scores import scores_decay

    return scores_decay()
