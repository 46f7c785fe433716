"""Entering journeys, and the triggers that do.

* `journey_enter` (one) and `journeys_enter` (a batch) insert enrollments under UNIQUE (journey, subscriber,
  period_key): at most once per period. The first step's `due_at` is stored in the row. A batch runs its due
  first steps at once, in its own transaction (`steps.steps_run`: a welcome message must leave inside WeChat's
  minute after the follow), except those that wait a few seconds for the subscriber's profile (profile_wait.py);
  a later step is run by the advance task (`steps.journeys_advance`, every minute).
* Triggers, each for a batch (conversations.events, campaigns.events): journeys_on_follows,
  journeys_on_topic_clicks, journeys_on_current_stages, journeys_on_conversions; one subscriber: journeys_on_stage;
  dormant subscribers are entered by `journeys_enter_dormant(now=...)` (beat task).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts import kinds
from accounts.kinds import InteractionKind as Kind
from accounts.models import Interaction, Subscriber
from accounts.selectors import touch_pending
from wechat_crm.db import rows_insert

from ..models import ChannelTopic, Journey, JourneyEnrollment, JourneyStep
from . import profile_wait
from . import steps as journey_steps

logger = logging.getLogger(__name__)
E = JourneyEnrollment.Status
# Having been active, for the dormant trigger: a message, a menu click or an opened tracked link.
ACTIVE_KINDS = kinds.MESSAGES | kinds.MENU_CLICKS | kinds.ENGAGING


def period_key(journey: Journey, now: dt.datetime) -> str:
    local = timezone.localtime(now)
    return {
        Journey.Period.EVER: "ever",
        Journey.Period.YEAR: f"{local:%Y}",
        Journey.Period.MONTH: f"{local:%Y-%m}",
        Journey.Period.WEEK: "{}-W{:02d}".format(*local.isocalendar()[:2]),
        Journey.Period.DAY: f"{local:%Y-%m-%d}",
    }[journey.period]


def _first_step(journey_id: int) -> JourneyStep | None:
    return JourneyStep.objects.filter(journey_id=journey_id).order_by("position", "id").first()


def journey_enter(
    *, journey: Journey, subscriber_id: int, now: dt.datetime | None = None, context: dict | None = None,
    key: str | None = None,
) -> JourneyEnrollment | None:  # fmt: skip
    """Enter the subscriber (None when they entered in this period already, or the journey has no steps)."""
    now = now or timezone.now()
    first = _first_step(journey.pk)
    if first is None:
        return None
    try:
        with transaction.atomic():
            enrollment = JourneyEnrollment.objects.create(
                journey=journey, subscriber_id=subscriber_id, period_key=key or period_key(journey, now),
                next_position=0, due_at=now + first.wait, context=context or {}, entered_at=now,
            )  # fmt: skip
    except IntegrityError:
        return None
    logger.info("subscriber %s entered journey %s (%s)", subscriber_id, journey.pk, enrollment.period_key)
    if first.wait <= dt.timedelta(minutes=1):
        journey_steps.enqueue_advance()
    return enrollment


class Entry(NamedTuple):
    journey: Journey
    subscriber_id: int
    at: dt.datetime
    context: dict[str, Any]


def journeys_enter(*, entries: Sequence[Entry]) -> int:
    """Enter subscribers into journeys, each at most once per period (an entry of a period entered already is
    skipped), a journey without steps never: one query for the journeys' first steps and one INSERT for the batch
    (which returns the enrollments it created). Returns how many entries were tried."""
    if not entries:
        return 0
    first_steps: dict[int, JourneyStep] = {}
    for step in (
        JourneyStep.objects.filter(journey_id__in={e.journey.pk for e in entries})
        .select_related("template")
        .order_by("journey_id", "position", "id")
    ):
        first_steps.setdefault(step.journey_id, step)
    rows: dict[tuple[int, int, str], JourneyEnrollment] = {}
    for entry in entries:
        step = first_steps.get(entry.journey.pk)
        if step is None:
            continue
        key = (entry.journey.pk, entry.subscriber_id, period_key(entry.journey, entry.at))
        rows.setdefault(key, JourneyEnrollment(
            journey=entry.journey, subscriber_id=entry.subscriber_id, period_key=key[2], next_position=0,
            due_at=entry.at + step.wait, context=entry.context, entered_at=entry.at,
        ))  # fmt: skip
    held_until = profile_wait.hold(rows.values(), first_steps)  # a welcome with {nickname} waits for the profile
    created = _enrollments_insert(rows)
    _run_due_first_steps(created)
    if held_until is not None:
        profile_wait.advance_at(held_until)
    if any(first_steps[journey_id].wait <= dt.timedelta(minutes=1) for journey_id, _s, _k in rows):
        journey_steps.enqueue_advance()
    return len(rows)


def _enrollments_insert(rows: dict[tuple[int, int, str], JourneyEnrollment]) -> list[JourneyEnrollment]:
    """Insert the enrollments (an entry of a period entered already is skipped by the unique constraint) and return
    those created, with their ids: on PostgreSQL the INSERT returns them; elsewhere one query finds them."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        created = rows_insert(list(rows.values()), ignore_conflicts=True,
                              returning=("id", "journey_id", "subscriber_id", "period_key"))  # fmt: skip
        for pk, journey_id, subscriber_id, key in created:
            rows[(journey_id, subscriber_id, key)].pk = pk
        return [rows[(journey_id, subscriber_id, key)] for _pk, journey_id, subscriber_id, key in created]
    JourneyEnrollment.objects.bulk_create(rows.values(), ignore_conflicts=True)
    found = JourneyEnrollment.objects.filter(
        journey_id__in={r.journey_id for r in rows.values()},
        subscriber_id__in={r.subscriber_id for r in rows.values()},
        entered_at__in={r.entered_at for r in rows.values()}, status=E.ACTIVE, next_position=0,
    ).values_list("pk", "journey_id", "subscriber_id", "period_key", "entered_at")  # fmt: skip
    created = []
    for pk, journey_id, subscriber_id, key, entered_at in found:
        row = rows.get((journey_id, subscriber_id, key))
        if row is not None and row.pk is None and row.entered_at == entered_at:
            row.pk = pk
            created.append(row)
    return created


def _run_due_first_steps(created: Sequence[JourneyEnrollment]) -> None:
    """The first steps due now (no wait) of the enrollments this transaction just created (no other transaction sees
    them before it commits: they need no claim), run in this transaction by `steps_run`. A failure leaves them to
    the advance task enqueued after commit."""
    now = timezone.now()
    due = [row for row in created if row.due_at <= now]
    if not due:
        return
    try:
        with transaction.atomic():
            journey_steps.steps_run_created(enrollments=due, now=now)
    except Exception:
        logger.exception("the first steps of %d journey enrollments failed; left to the advance task", len(due))


class Follow(NamedTuple):
    subscriber_id: int
    channel_id: int | None
    at: dt.datetime


def journeys_on_follows(*, follows: Sequence[Follow]) -> int:
    """The follow journeys (of any channel, or of the follow's channel), with the channel's topic in the context.
    One query when no follow journey exists; a few for the batch otherwise."""
    journeys = list(Journey.objects.filter(is_active=True, trigger=Journey.Trigger.FOLLOW))
    if not journeys or not follows:
        return 0
    channel_ids = {f.channel_id for f in follows if f.channel_id}
    topics: dict[int, int] = {}
    for channel_id, topic_id in (
        ChannelTopic.objects.filter(channel_id__in=channel_ids).order_by("pk").values_list("channel_id", "topic_id")
    ):
        topics.setdefault(channel_id, topic_id)
    entries = []
    for follow in follows:
        context: dict[str, Any] = {"channel_id": follow.channel_id}
        if follow.channel_id in topics:
            context["topic_id"] = topics[follow.channel_id]
        entries += [Entry(j, follow.subscriber_id, follow.at, context) for j in journeys
                    if j.channel_id is None or j.channel_id == follow.channel_id]  # fmt: skip
    return journeys_enter(entries=entries)


class TopicClick(NamedTuple):
    subscriber_id: int
    topic_ids: list[int]
    at: dt.datetime


def journeys_on_topic_clicks(*, clicks: Sequence[TopicClick]) -> int:
    """The topic journeys of the clicked contents' topics. One query when none exists, a few for the batch."""
    topic_ids = {t for click in clicks for t in click.topic_ids}
    if not topic_ids:
        return 0
    journeys = list(Journey.objects.filter(is_active=True, trigger=Journey.Trigger.TOPIC_CLICK, topic_id__in=topic_ids))
    return journeys_enter(
        entries=[Entry(j, c.subscriber_id, c.at, {"topic_id": j.topic_id}) for c in clicks for j in journeys
                 if j.topic_id in c.topic_ids]
    )  # fmt: skip


class StageTouch(NamedTuple):
    subscriber_id: int
    at: dt.datetime
    stage_before: str  # the subscriber's stage before the batch moved it


def journeys_on_current_stages(*, touches: Sequence[StageTouch]) -> int:
    """After interactions (once the funnel's follow-up has moved the stages): enter the stage journeys of the stage
    each subscriber had at each interaction, as if they were processed one by one (oldest first): their stage before
    the batch, or a further one the batch reached by then. Entering is once per period, so a stage reached long ago
    does not re-enter a journey that is "once ever". One query when no stage journey exists; three otherwise."""
    from campaigns.stages import ORDER, STAGE_FIELDS

    journeys = list(Journey.objects.filter(is_active=True, trigger=Journey.Trigger.STAGE))
    if not journeys or not touches:
        return 0
    reached = {
        row["pk"]: row
        for row in Subscriber.objects.filter(pk__in={t.subscriber_id for t in touches}).values(
            "pk", *STAGE_FIELDS.values()
        )
    }
    entries = []
    for touch in touches:
        row = reached.get(touch.subscriber_id, {})
        furthest = max(
            [ORDER.index(touch.stage_before) if touch.stage_before in ORDER else 0]
            + [
                n
                for n, stage in enumerate(ORDER)
                if (at := row.get(STAGE_FIELDS[stage])) is not None and at <= touch.at
            ]
        )
        stage = ORDER[furthest]
        entries += [Entry(j, touch.subscriber_id, touch.at, {"stage": stage}) for j in journeys if j.stage == stage]
    return journeys_enter(entries=entries)


def _enter_all(journeys, subscriber_id: int, now: dt.datetime | None, context: dict) -> list[JourneyEnrollment]:
    return [e for j in journeys if (e := journey_enter(journey=j, subscriber_id=subscriber_id, now=now,
                                                       context=context)) is not None]  # fmt: skip


def journeys_on_stage(subscriber_id: int, stage: str, *, now: dt.datetime | None = None):
    """Hook for the funnel: call it when a subscriber reaches `stage`."""
    journeys = Journey.objects.filter(is_active=True, trigger=Journey.Trigger.STAGE, stage=stage)
    entered = _enter_all(journeys, subscriber_id, now, {"stage": stage})
    if stage == Subscriber.Stage.CONVERTED:
        entered += journeys_on_conversion(subscriber_id, now=now)
    return entered


def journeys_on_conversion(subscriber_id: int, *, now: dt.datetime | None = None, **context: Any):
    """Hook for the funnel: a conversion. Marks the subscriber's enrollments as converted (journey reports) and
    enters the conversion journeys."""
    now = now or timezone.now()
    JourneyEnrollment.objects.filter(subscriber_id=subscriber_id, converted_at__isnull=True).update(converted_at=now)
    journeys = Journey.objects.filter(is_active=True, trigger=Journey.Trigger.CONVERSION)
    return _enter_all(journeys, subscriber_id, now, {k: v for k, v in context.items() if isinstance(v, str | int)})


def journeys_on_conversions(*, first_conversion: dict[int, dt.datetime]) -> int:
    """Hook for a batch of conversions (subscriber id -> when): one UPDATE marks their enrollments converted, and
    the conversion journeys (if any) are entered. Returns how many enrollments were created."""
    if not first_conversion:
        return 0
    ids = list(first_conversion)
    JourneyEnrollment.objects.filter(subscriber_id__in=ids, converted_at__isnull=True).update(
        converted_at=timezone.now()
    )
    journeys = list(Journey.objects.filter(is_active=True, trigger=Journey.Trigger.CONVERSION))
    return journeys_enter(entries=[Entry(j, sid, at, {}) for sid, at in first_conversion.items() for j in journeys])


def journeys_enter_dormant(*, now: dt.datetime | None = None) -> int:
    """Enter followers silent for the journey's N days who had been interactive (sent a message, clicked a menu or
    a link) before. The period is the quiet spell (its last interaction), so one spell enters once."""
    now = now or timezone.now()
    entered = 0
    for journey in Journey.objects.filter(is_active=True, trigger=Journey.Trigger.DORMANT, dormant_days__gt=0):
        cutoff = now - dt.timedelta(days=journey.dormant_days)
        was_active = Interaction.objects.filter(subscriber_id=OuterRef("pk"), kind__in=ACTIVE_KINDS)
        candidates = (
            Subscriber.objects.filter(is_following=True, last_interaction_at__lt=cutoff)
            .filter(Exists(was_active))
            # A message whose follow-ups (which move last_interaction_at) have not run yet ends the silence already.
            .exclude(touch_pending(cutoff))
            .exclude(
                Exists(
                    JourneyEnrollment.objects.filter(
                        journey=journey, subscriber_id=OuterRef("pk"), entered_at__gt=OuterRef("last_interaction_at")
                    )
                )
            )
            .values_list("pk", "last_interaction_at")[:5000]
        )
        for subscriber_id, last in candidates:
            topic_id = last_read_topic(subscriber_id)
            key = f"dormant:{last:%Y%m%dT%H%M%S}"
            if journey_enter(journey=journey, subscriber_id=subscriber_id, now=now, key=key,
                             context={"topic_id": topic_id} if topic_id else {}):  # fmt: skip
                entered += 1
    return entered


def last_read_topic(subscriber_id: int) -> int | None:
    """The topic of the last article the subscriber opened (tracked link clicks carry the content id)."""
    from content.models import Article

    for data in (
        Interaction.objects.filter(subscriber_id=subscriber_id, kind=Kind.LINK_CLICK)
        .order_by("-created_at")
        .values_list("data", flat=True)[:20]
    ):
        content_id = (data or {}).get("content_id")
        if content_id:
            topic_id = Article.topics.through.objects.filter(article_id=content_id).values_list("topic_id", flat=True)
            first = topic_id.first()
            if first:
                return first
    return None
