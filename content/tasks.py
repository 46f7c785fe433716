"""Celery tasks of pushes (queue `outbound`). Each takes ids, calls a service, and is safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="content.tasks.pushes_dispatch_due")
def pushes_dispatch_due() -> int:
    """Every minute: claim due pushes (exactly once, SKIP LOCKED + state guard) and resume stalled ones."""
    from .services import pushes

    claimed = pushes.pushes_claim_due()
    pushes.pushes_resume_stalled()
    return len(claimed)


@shared_task(name="content.tasks.push_dispatch")
def push_dispatch(push_id: int) -> bool:
    """The countdown task enqueued at scheduling: claims this push if it is (still) due; the beat is the net."""
    from .services import pushes

    return bool(pushes.pushes_claim_due(push_id=push_id))


@shared_task(name="content.tasks.push_start")
def push_start_task(push_id: int) -> int:
    """Resolve the recipients into deliveries (once) and fan out one page task per range of delivery ids."""
    from .services import pushes

    return pushes.push_start(push_id=push_id)


push_start = push_start_task


@shared_task(bind=True, name="content.tasks.push_send_page")
def push_send_page(self, push_id: int, lo: int, hi: int | None) -> dict:
    """Send the queued deliveries of one id range; re-queue itself for quiet hours and WeChat's retry-later."""
    from django.conf import settings

    from .services.deliveries import deliveries_send_page

    threads = getattr(settings, "PUSH_SEND_THREADS", None)
    outcome = deliveries_send_page(push_id=push_id, lo=lo, hi=hi, threads=threads)
    if outcome.defer_until is not None:
        push_send_page.apply_async((push_id, lo, hi), eta=outcome.defer_until)
    elif outcome.retry_in is not None:
        push_send_page.apply_async((push_id, lo, hi), countdown=outcome.retry_in)
    return {"claimed": outcome.claimed, **outcome.counts}


@shared_task(name="content.tasks.delivery_job_finish_later")
def delivery_job_finish_later(interaction_id: int, attempt: int) -> bool:
    """A TEMPLATESENDJOBFINISH that arrived before its msgid was written: try again, backing off (2 s .. 60 s)."""
    from .services.deliveries import delivery_job_finish_retry

    done = delivery_job_finish_retry(interaction_id=interaction_id, attempt=attempt)
    if not done:
        delivery_job_finish_later.apply_async((interaction_id, attempt + 1), countdown=min(60, 2 ** (attempt + 1)))
    return done


@shared_task(name="content.tasks.push_tallies_compact")
def push_tallies_compact() -> int:
    """Every 5 minutes: fold each push's counter additions into one row per counter (where they piled up)."""
    from .services.deliveries import tallies

    return tallies.tallies_compact()


@shared_task(name="content.tasks.link_clicks_drain")
def link_clicks_drain() -> int:
    """Store the tracked-link clicks waiting in the click buffer (content.clicks), by batches, exactly once. Asked
    for by the redirect (at most once a second) and run by the beat every minute; one drain at a time."""
    from . import clicks

    return clicks.clicks_drain()
