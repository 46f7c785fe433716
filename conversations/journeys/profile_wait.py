"""First steps that show the subscriber's profile wait for the profile fetch, a bounded time.

A follow's first journey step runs in the follow's own follow-up batch, about a second before the profile fetch
(accounts.profiles) asks WeChat who the person is: a welcome "欢迎 {nickname}" would go out with no name. So when a
batch enters journeys (entry.journeys_enter), an enrollment whose first step needs the profile (`needs_profile`: a
message whose text has {nickname}, or whose service template shows the subscriber's profile fields) and whose
subscriber's profile is still pending is held: its `due_at` moves to JOURNEY_PROFILE_WAIT seconds after the follow
(never later than that; WeChat lets the account send 3 customer-service messages in the minute after a follow), and
its context says `profile_wait`.

* The profile fetch stores a batch and sends accounts.signals.profiles_fetched: the held steps of those subscribers
  run at once (`journeys_on_profiles`), with the name.
* The fetch fails or is slow: a countdown advance runs them when the wait is over, and the text falls back on a
  neutral word where the name goes (content._text). WeChat no longer returns nicknames to most accounts, so the
  fallback is also what a fetched profile without one gets.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Collection, Iterable, Mapping

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Subscriber
from accounts.profiles import profile_pending_q

from ..models import JourneyEnrollment, JourneyStep

logger = logging.getLogger(__name__)
E = JourneyEnrollment.Status
WAIT_KEY = "profile_wait"
# The profile's columns a service template can show (content.templating.SUBSCRIBER_FIELDS that the fetch fills in).
TEMPLATE_PROFILE = re.compile(r"subscriber\.(nickname|sex|city|province|country|language)\b")


def needs_profile(step: JourneyStep) -> bool:
    """A message step whose text or service template shows the subscriber's profile."""
    if step.action != JourneyStep.Action.MESSAGE:
        return False
    if "{nickname}" in step.text:
        return True
    template = step.template if step.template_id else None
    return bool(template and any(TEMPLATE_PROFILE.search(str(f.get("value", ""))) for f in template.fields or []))


def hold(rows: Iterable[JourneyEnrollment], first_steps: Mapping[int, JourneyStep]) -> dt.datetime | None:
    """Hold the new enrollments whose first step needs a profile that is still pending (one query, only when such a
    step exists): their due time moves to the end of the wait. Returns the latest end of a wait (None: none held)."""
    candidates = [row for row in rows if needs_profile(first_steps[row.journey_id])]
    if not candidates:
        return None
    pending = set(
        Subscriber.objects.filter(pk__in={row.subscriber_id for row in candidates})
        .filter(profile_pending_q())
        .values_list("pk", flat=True)
    )
    now, wait = timezone.now(), dt.timedelta(seconds=settings.JOURNEY_PROFILE_WAIT)
    latest = None
    for row in candidates:
        if row.subscriber_id not in pending:
            continue
        until = row.entered_at + wait
        if until <= max(now, row.due_at):  # the wait is over already (a late batch), or the step waits longer anyway
            continue
        row.due_at, row.context = until, {**row.context, WAIT_KEY: True}
        latest = max(latest or until, until)
    return latest


def advance_at(until: dt.datetime) -> None:
    """After commit, an advance at the end of the wait (the beat's every-minute advance could miss the minute)."""
    from ..tasks import journeys_advance_task

    def enqueue() -> None:
        try:
            countdown = max(0.0, (until - timezone.now()).total_seconds()) + 0.5
            journeys_advance_task.apply_async(countdown=countdown)
        except Exception:  # the beat's advance runs them within a minute
            logger.warning("could not enqueue the advance after the profile wait", exc_info=True)

    transaction.on_commit(enqueue)


def journeys_on_profiles(*, subscriber_ids: Collection[int], now: dt.datetime | None = None) -> int:
    """The held first steps of these subscribers (their profile is now stored) run now, in this transaction: one
    query when none is held. Returns how many steps ran."""
    from . import steps as journey_steps

    now = now or timezone.now()
    held = JourneyEnrollment.objects.filter(
        subscriber_id__in=list(subscriber_ids), status=E.ACTIVE, next_position=0, due_at__gt=now,
        **{f"context__{WAIT_KEY}": True},
    )  # fmt: skip
    with transaction.atomic():
        ids = list(held.select_for_update(skip_locked=True).values_list("pk", flat=True))
        if not ids:
            return 0
        JourneyEnrollment.objects.filter(pk__in=ids).update(due_at=now)
        return journey_steps.steps_run(enrollment_ids=ids, now=now)
