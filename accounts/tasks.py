"""Celery tasks of the accounts app: the follow-ups of callback interactions (queue `inbound`)."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from . import follow_ups

logger = logging.getLogger(__name__)

SWEEP_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 500


def _run_follow_ups(interactions):
    from wechat_crm.wechat.dispatch import follow_ups_run

    follow_ups_run(interactions)


@shared_task(name="accounts.tasks.interaction_process")
def interaction_process(interaction_id: int) -> bool:
    """Run the follow-ups of one interaction (wechat_crm.wechat.dispatch). Safe to run twice: False the second time."""
    return bool(follow_ups.interactions_process(run=_run_follow_ups, interaction_ids=[interaction_id]).done)


@shared_task(name="accounts.tasks.interactions_process")
def interactions_process(interaction_ids: list[int]) -> int:
    """Interactions handed over by accounts.outbox after commit, and the other pending ones, by batches: each batch's
    follow-ups run once for the whole batch. Safe to run twice. Returns how many it processed; one that fails stays
    pending for the sweeper."""
    try:
        return follow_ups.interactions_drain(run=_run_follow_ups, interaction_ids=interaction_ids)
    except Exception:
        logger.exception("processing interactions %s failed; they stay pending", interaction_ids)
        return 0


@shared_task(name="accounts.tasks.interactions_sweep")
def interactions_sweep() -> int:
    """Every minute: process interactions left pending for over 30 s (their enqueue failed or the task was lost)."""
    return follow_ups.interactions_process_pending(older_than=SWEEP_AFTER, limit=SWEEP_BATCH, run=_run_follow_ups)


# --- Profiles, follower sync and tags: WeChat calls ----------------------------------------------------------------


@shared_task(name="accounts.tasks.profiles_fetch_pending", bind=True, max_retries=20)
def profiles_fetch_pending_task(self) -> int:
    """Fetch every pending profile through WeChat's batch profile call, 100 at a time. Enqueued ~1 s after a follow
    (accounts.profiles.profile_fetch_schedule) and every 5 minutes as a sweep. While follows wait for their
    follow-ups it fetches one batch and schedules itself again, so that their welcomes go first. Safe to run twice:
    each batch is claimed (select_for_update with skip_locked) before it is fetched. A WeChat error that may pass
    (quota, 5xx, network) retries the task later."""

    from wechat_crm.wechat.errors import Outcome, WeChatError, classify

    from .profiles import profile_fetch_schedule, profiles_fetch_run

    try:
        run = profiles_fetch_run(yield_to_follows=True)
        if run.more:
            profile_fetch_schedule()
        return run.handled
    except WeChatError as exc:
        decision = classify(exc, attempt=self.request.retries)
        if decision.outcome is not Outcome.RETRY_LATER:
            logger.error("profile fetch failed (%s); the pending profiles wait for the next sweep", decision.reason)
            return 0
        countdown = _retry_countdown(decision)
        logger.warning("profile fetch: %s, retrying in %.1f s", decision.reason, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="accounts.tasks.remark_push", bind=True, max_retries=10)
def remark_push_task(self, subscriber_id: int) -> bool:
    """Set a subscriber's remark on WeChat after an operator or an integration changed it. A WeChat error that may
    pass retries; one that will not (the person stopped following, a remark WeChat refuses) is logged and dropped."""
    from wechat_crm.wechat.errors import Outcome, WeChatError, classify

    from .subscribers import subscriber_remark_push

    try:
        return subscriber_remark_push(subscriber_id=subscriber_id)
    except WeChatError as exc:
        decision = classify(exc, attempt=self.request.retries)
        if decision.outcome is Outcome.RETRY_LATER:
            raise self.retry(exc=exc, countdown=_retry_countdown(decision)) from exc
        logger.warning("remark of subscriber %s not set on WeChat: %s", subscriber_id, decision.reason)
        return False


def _retry_countdown(decision) -> float:
    from django.conf import settings

    return min(decision.retry_after or 60.0, settings.PROFILE_FETCH_RETRY_MAX_DELAY)


@shared_task(name="accounts.tasks.follower_sync", bind=True, max_retries=10)
def follower_sync_task(self, restart: bool = False) -> int:
    """Import the account's existing followers (resumes the unfinished sync). Enqueued on queue `reports` (it runs
    long). A WeChat error that may pass retries the task, which resumes from the saved cursor."""
    from wechat_crm.wechat.errors import Outcome, classify

    from .followers import FollowerSyncBusy, FollowerSyncError, follower_sync_run

    try:
        return follower_sync_run(restart=restart).imported
    except FollowerSyncBusy:
        logger.info("follower sync: another import is running; nothing to do")
        return -1
    except FollowerSyncError as exc:
        decision = classify(exc.error, attempt=self.request.retries)
        if decision.outcome is Outcome.RETRY_LATER:
            logger.warning("follower sync %s: %s, resuming later", exc.sync.pk, decision.reason)
            raise self.retry(exc=exc, countdown=_retry_countdown(decision)) from exc
        logger.error("follower sync %s failed: %s", exc.sync.pk, exc)
        return -1


@shared_task(name="accounts.tasks.tags_sync", bind=True, max_retries=10)
def tags_sync_task(self, direction: str = "both") -> dict:
    """Sync local tags with WeChat's tags (pull, push or both). Safe to run again: a WeChat error that may pass
    retries the whole sync."""
    from dataclasses import asdict

    from wechat_crm.wechat.errors import Outcome, WeChatError, classify

    from .tagging import tags_sync

    try:
        return asdict(tags_sync(direction=direction))
    except WeChatError as exc:
        decision = classify(exc, attempt=self.request.retries)
        if decision.outcome is not Outcome.RETRY_LATER:
            raise
        logger.warning("tag sync: %s, retrying", decision.reason)
        raise self.retry(exc=exc, countdown=_retry_countdown(decision)) from exc
