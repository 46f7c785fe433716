"""Journeys: trigger -> (wait -> condition -> action) steps.

* Entering: `journey_enter` (one) and `journeys_enter` (a batch) insert enrollments under UNIQUE (journey,
  subscriber, period_key): at most once per period. The first step's `due_at` is stored in the row.
* Advancing: `journeys_advance(now=...)` (beat task every minute, and right after an enrollment) locks due
  enrollments with SELECT ... FOR UPDATE SKIP LOCKED and runs each one's current step in the same transaction as
  its JourneyStepRun (UNIQUE (enrollment, step)) and its effects (outbound rows are sent by Celery after commit):
  waits survive worker and beat restarts, nothing fires twice.
* Triggers, each for a batch (conversations.events, campaigns.events): journeys_on_follows,
  journeys_on_topic_clicks, journeys_on_current_stages, journeys_on_conversions; one subscriber: journeys_on_stage;
  dormant subscribers are entered by `journeys_enter_dormant(now=...)` (beat task).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import kinds
from accounts.kinds import InteractionKind as Kind
from accounts.models import Interaction, Subscriber
from content.models import SendPolicy
from wechat_crm.db import reads_reports

from . import policy, scores, services
from .models import (
    ChannelTopic,
    Journey,
    JourneyEnrollment,
    JourneyStep,
    JourneyStepRun,
    Notification,
    OutboundMessage,
)

logger = logging.getLogger(__name__)
ADVANCE_BATCH = 200
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


def _steps(journey_id: int) -> list[JourneyStep]:
    return list(JourneyStep.objects.filter(journey_id=journey_id).order_by("position", "id"))


def _enqueue_advance() -> None:
    from .tasks import journeys_advance_task

    def enqueue() -> None:
        try:
            journeys_advance_task.delay()
        except Exception:  # the beat task advances it within a minute
            logger.warning("could not enqueue the journey advance", exc_info=True)

    transaction.on_commit(enqueue)


def journey_enter(
    *, journey: Journey, subscriber_id: int, now: dt.datetime | None = None, context: dict | None = None,
    key: str | None = None,
) -> JourneyEnrollment | None:  # fmt: skip
    """Enter the subscriber (None when they entered in this period already, or the journey has no steps)."""
    now = now or timezone.now()
    steps = _steps(journey.pk)
    if not steps:
        return None
    try:
        with transaction.atomic():
            enrollment = JourneyEnrollment.objects.create(
                journey=journey, subscriber_id=subscriber_id, period_key=key or period_key(journey, now),
                next_position=0, due_at=now + steps[0].wait, context=context or {}, entered_at=now,
            )  # fmt: skip
    except IntegrityError:
        return None
    logger.info("subscriber %s entered journey %s (%s)", subscriber_id, journey.pk, enrollment.period_key)
    if steps[0].wait <= dt.timedelta(minutes=1):
        _enqueue_advance()
    return enrollment


class Entry(NamedTuple):
    journey: Journey
    subscriber_id: int
    at: dt.datetime
    context: dict[str, Any]


def journeys_enter(*, entries: Sequence[Entry]) -> int:
    """Enter subscribers into journeys, each at most once per period (an entry of a period entered already is
    skipped), a journey without steps never: one query for the journeys' first steps and one INSERT for the batch.
    Returns how many entries were tried."""
    if not entries:
        return 0
    first_steps: dict[int, JourneyStep] = {}
    for step in JourneyStep.objects.filter(journey_id__in={e.journey.pk for e in entries}).order_by(
        "journey_id", "position", "id"
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
    JourneyEnrollment.objects.bulk_create(rows.values(), ignore_conflicts=True)
    if any(first_steps[journey_id].wait <= dt.timedelta(minutes=1) for journey_id, _s, _k in rows):
        _enqueue_advance()
    return len(rows)


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


# --- advancing ------------------------------------------------------------------------------------------------------


def condition_holds(step: JourneyStep, subscriber: Subscriber, *, now: dt.datetime) -> bool:
    c = JourneyStep.Condition
    if step.condition in ("", None):
        return True
    if step.condition in (c.HAS_TAG, c.NOT_TAG):
        has = subscriber.tags.filter(pk=step.condition_tag_id).exists()
        return has if step.condition == c.HAS_TAG else not has
    if step.condition == c.STAGE_IN:
        return subscriber.stage in [s.strip() for s in step.condition_value.split(",") if s.strip()]
    if step.condition == c.PREFERS_TOPIC:
        opted_out = subscriber.topics_opted_out.filter(pk=step.condition_topic_id).exists()
        return not opted_out and not subscriber.pushes_paused
    if step.condition == c.PUSHES_ACTIVE:
        return not subscriber.pushes_paused
    if step.condition == c.IN_WINDOW:
        return services.cs_window(subscriber, now).allowed
    if step.condition == c.SCORE_AT_LEAST:
        return subscriber.score >= int(step.condition_value or 0)
    if step.condition == c.NOT_CONVERTED:
        return subscriber.stage != Subscriber.Stage.CONVERTED
    return False


def _topic_articles(topic_id: int | None, limit: int = 3) -> list[Any]:
    """The best published articles of the topic: the most clicked (tracked link clicks) of the 50 newest."""
    from collections import Counter

    from content.models import Article

    if not topic_id:
        return []
    candidates = list(
        Article.objects.filter(status=Article.Status.PUBLISHED, topics=topic_id).order_by("-published_at", "-id")[:50]
    )
    clicks = Counter(
        Interaction.objects.filter(kind=Kind.LINK_CLICK, data__content_id__in=[a.pk for a in candidates]).values_list(
            "data__content_id", flat=True
        )
    )
    return sorted(candidates, key=lambda a: -clicks.get(a.pk, 0))[:limit]


def _text(step: JourneyStep, subscriber: Subscriber, topic_name: str) -> str:
    return step.text.replace("{nickname}", subscriber.nickname or "").replace("{topic}", topic_name)


def _content(step: JourneyStep, topic_id: int | None) -> tuple[str, list[Any], list[int]]:
    """A message step's topic name, articles and their topics (for the topic opt-outs)."""
    from content.models import Article, Topic

    topic_name = Topic.objects.filter(pk=topic_id).values_list("name", flat=True).first() or "" if topic_id else ""
    if step.content == JourneyStep.Content.ARTICLE:
        articles = [step.article]
    elif step.content == JourneyStep.Content.TOPIC_BEST:
        articles = _topic_articles(topic_id)
    else:
        articles = []
    topic_ids = {topic_id} if topic_id else set()
    if articles:
        topic_ids |= set(Article.topics.through.objects.filter(article_id__in=[a.pk for a in articles])
                         .values_list("topic_id", flat=True))  # fmt: skip
    return topic_name, articles, sorted(topic_ids)


class _Batch:
    """What a batch of due enrollments shares, each loaded or asked once for the batch: the journeys' steps, the
    subscribers (a subscriber with one enrollment in the batch: its first step uses the row loaded here), each
    message step's content per topic, and the send policy's channel for the enrollments whose due step is a
    message (one `journey_channels` per step and topics; the worker asks the policy again before sending)."""

    def __init__(self, enrollments: Sequence[JourneyEnrollment], now: dt.datetime) -> None:
        self.steps: dict[int, list[JourneyStep]] = {}
        for step in (
            JourneyStep.objects.filter(journey_id__in={e.journey_id for e in enrollments})
            .select_related("article", "template", "notice_template", "tag")
            .order_by("journey_id", "position", "id")
        ):
            self.steps.setdefault(step.journey_id, []).append(step)
        counts = Counter(e.subscriber_id for e in enrollments)
        self._fresh = Subscriber.objects.in_bulk([pk for pk, n in counts.items() if n == 1])
        self._contents: dict[tuple[int, int | None], tuple[str, list[Any], list[int]]] = {}
        self.choices: dict[tuple[int, int], policy.Choice] = {}
        groups: dict[tuple[int, tuple[int, ...]], tuple[JourneyStep, list[JourneyEnrollment]]] = {}
        for enrollment in enrollments:
            steps = self.steps.get(enrollment.journey_id, [])
            if enrollment.subscriber_id not in self._fresh or enrollment.next_position >= len(steps):
                continue
            step = steps[enrollment.next_position]
            if step.action != JourneyStep.Action.MESSAGE or not enrollment.journey.is_active:
                continue
            _name, _articles, topic_ids = self.content(step, enrollment.context.get("topic_id"))
            groups.setdefault((step.pk, tuple(topic_ids)), (step, []))[1].append(enrollment)
        send_policy = SendPolicy.current() if groups else None
        for (_pk, topic_ids), (step, group) in groups.items():
            choices = policy.journey_channels(
                subscriber_ids=[e.subscriber_id for e in group], now=now, template=step.template,
                notice_template=step.notice_template, topic_ids=topic_ids, policy=send_policy,
            )  # fmt: skip
            for enrollment in group:
                self.choices[(enrollment.pk, step.pk)] = choices[enrollment.subscriber_id]

    def content(self, step: JourneyStep, topic_id: int | None) -> tuple[str, list[Any], list[int]]:
        key = (step.pk, topic_id)
        if key not in self._contents:
            self._contents[key] = _content(step, topic_id)
        return self._contents[key]

    def subscriber(self, subscriber_id: int) -> Subscriber:
        """The row loaded for the batch, once (a later step of the same run may follow a change): then fresh."""
        return self._fresh.pop(subscriber_id, None) or Subscriber.objects.get(pk=subscriber_id)


def _act(
    step: JourneyStep, enrollment: JourneyEnrollment, subscriber: Subscriber, now: dt.datetime,
    batch: _Batch | None = None,
) -> str:  # fmt: skip
    """Run the step's action; returns a detail for the run."""
    from accounts import tagging

    a = JourneyStep.Action
    dedupe = f"journey:{enrollment.pk}:{step.pk}"
    if step.action == a.ADD_TAG:
        tagging.tag_add(subscribers=[subscriber.pk], tag=step.tag)
        return step.tag.name
    if step.action == a.REMOVE_TAG:
        tagging.tag_remove(subscribers=[subscriber.pk], tag=step.tag)
        return step.tag.name
    if step.action == a.SCORE:
        scores.score_change(subscriber_id=subscriber.pk, points=step.score_delta,
                              reason=f"journey {enrollment.journey_id}", at=now)  # fmt: skip
        return f"{step.score_delta:+d}"
    topic_id = enrollment.context.get("topic_id")
    topic_name, articles, topic_ids = batch.content(step, topic_id) if batch else _content(step, topic_id)
    text = _text(step, subscriber, topic_name)
    if step.action == a.NOTIFY:
        Notification.objects.create(subscriber=subscriber, journey_id=enrollment.journey_id, text=text, created_at=now)
        logger.warning("journey %s: operator notified about subscriber %s: %s", enrollment.journey_id,
                       subscriber.pk, text)  # fmt: skip
        return "notified"
    # A message: the send policy picks the first channel that applies (customer-service inside the window, a
    # subscription notice the person consented to, a service-type template) or says why none does.
    choice = batch.choices.get((enrollment.pk, step.pk)) if batch else None
    if choice is None:
        choice = policy.journey_channel(subscriber=subscriber, now=now, template=step.template,
                                        notice_template=getattr(step, "notice_template", None),
                                        topic_ids=topic_ids)  # fmt: skip
    if choice.decision.verdict == policy.Verdict.LATER:
        raise Deferred(choice.decision.at)
    if choice.channel is None:
        raise Skipped(policy.choice_detail(choice))
    src = OutboundMessage.Source.JOURNEY
    if choice.channel == policy.Channel.CUSTOM:
        if len(articles) == 1:  # one article: a card (the text as its description)
            payload = services.custom_news_payload(subscriber, articles, description=text)
        else:  # several: the text and one tracked link per article
            from content.services import link_track

            lines = [text] if text else []
            lines += [f"{art.title} {link_track(art.public_url(), subscriber_id=subscriber.pk, content_id=art.pk)}"
                      for art in articles]  # fmt: skip
            text = "\n".join(lines)
            if not text:
                raise Skipped("nothing_to_send")
            payload = services.custom_text_payload(subscriber, text)
        services.custom_send(subscriber=subscriber, payload=payload, text=text, source=src, dedupe_key=dedupe, now=now)
        return "custom"
    if choice.channel == policy.Channel.NOTICE:  # `notices` sends the subscription notice here
        return notice_send(step=step, enrollment=enrollment, subscriber=subscriber, articles=articles, now=now,
                           dedupe_key=dedupe)  # fmt: skip
    services.template_send(subscriber=subscriber, template=step.template, source=src, decided=True,
                           article=articles[0] if articles else None, dedupe_key=dedupe, now=now)  # fmt: skip
    return "template"


class Deferred(Exception):
    """The send policy said LATER (quiet hours): the step runs again at `at`."""

    def __init__(self, at: dt.datetime) -> None:
        super().__init__(at)
        self.at = at


class Skipped(Exception):
    """The step's message goes nowhere: the run is recorded as skipped with the reason."""


def notice_send(*, step: JourneyStep, enrollment: JourneyEnrollment, subscriber: Subscriber, articles: list[Any],
                now: dt.datetime, dedupe_key: str) -> str:  # fmt: skip
    """The step's subscription notice (the send policy found the person's consent), sent by Celery: its values
    (checked when the step was saved), opening the first article through its tracked link. The worker asks the
    policy again before sending; WeChat's acceptance uses one consent of a one-time template."""
    services.notice_send(subscriber=subscriber, template=step.notice_template, values=step.notice_values,
                         article=articles[0] if articles else None, source=OutboundMessage.Source.JOURNEY,
                         dedupe_key=dedupe_key, now=now)  # fmt: skip
    return "notice"


def _advance_one(enrollment: JourneyEnrollment, now: dt.datetime, batch: _Batch | None = None) -> None:
    steps = batch.steps.get(enrollment.journey_id, []) if batch else _steps(enrollment.journey_id)
    if enrollment.next_position >= len(steps) or not enrollment.journey.is_active:
        enrollment.status, enrollment.finished_at, enrollment.due_at = E.COMPLETED, now, None
        enrollment.save(update_fields=["status", "finished_at", "due_at"])
        return
    step = steps[enrollment.next_position]
    subscriber = (
        batch.subscriber(enrollment.subscriber_id) if batch else Subscriber.objects.get(pk=enrollment.subscriber_id)
    )
    try:
        with transaction.atomic():
            run = JourneyStepRun.objects.create(enrollment=enrollment, step=step, outcome="done", at=now)
            if not condition_holds(step, subscriber, now=now):
                run.outcome = (JourneyStepRun.Outcome.STOPPED if step.on_fail == JourneyStep.OnFail.STOP
                               else JourneyStepRun.Outcome.SKIPPED)  # fmt: skip
            else:
                try:
                    run.detail = _act(step, enrollment, subscriber, now, batch)[:255]
                except Skipped as skip:  # the send policy's reason
                    run.outcome, run.detail = JourneyStepRun.Outcome.SKIPPED, str(skip)[:255]
            run.save(update_fields=["outcome", "detail"])
    except Deferred as later:  # quiet hours: nothing recorded, the step runs when they end
        enrollment.due_at = later.at
        enrollment.save(update_fields=["due_at"])
        return
    except IntegrityError:  # ran already (cannot happen under the row lock; kept as the last guard)
        logger.warning("journey step %s already ran for enrollment %s", step.pk, enrollment.pk)
        run = None
    nxt = enrollment.next_position + 1
    if (run is not None and run.outcome == JourneyStepRun.Outcome.STOPPED) or nxt >= len(steps):
        enrollment.status = E.STOPPED if run is not None and run.outcome == "stopped" else E.COMPLETED
        enrollment.finished_at, enrollment.due_at = now, None
    else:
        enrollment.due_at = now + steps[nxt].wait
    enrollment.next_position = nxt
    enrollment.save(update_fields=["status", "finished_at", "due_at", "next_position"])


def journeys_advance(*, now: dt.datetime | None = None, limit: int = ADVANCE_BATCH) -> int:
    """Run every due step (several steps of one enrollment when their waits are over). Safe to run concurrently
    (SKIP LOCKED) and twice. Returns how many steps ran."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            batch = list(
                JourneyEnrollment.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("journey")
                .filter(status=E.ACTIVE, due_at__lte=now)
                .order_by("due_at", "id")[:limit]
            )
            shared = _Batch(batch, now) if batch else None
            for enrollment in batch:
                # Every step whose wait is over (a step without a wait runs right after the previous one).
                while enrollment.status == E.ACTIVE and enrollment.due_at is not None and enrollment.due_at <= now:
                    try:
                        with transaction.atomic():
                            _advance_one(enrollment, now, shared)
                    except Exception:
                        logger.exception("journey enrollment %s: step failed; retried next minute", enrollment.pk)
                        enrollment.refresh_from_db()
                        break
                    done += 1
        if len(batch) < limit:
            return done


@reads_reports
def journey_report(journey: Journey) -> dict[str, Any]:
    """Entered, completed each step (done / skipped), finished and converted."""
    enrollments = JourneyEnrollment.objects.filter(journey=journey)
    counts = enrollments.aggregate(
        entered=Count("pk"),
        completed=Count("pk", filter=Q(status=E.COMPLETED)),
        stopped=Count("pk", filter=Q(status=E.STOPPED)),
        active=Count("pk", filter=Q(status=E.ACTIVE)),
        converted=Count("pk", filter=Q(converted_at__isnull=False)),
    )
    runs = {
        (row["step_id"], row["outcome"]): row["n"]
        for row in JourneyStepRun.objects.filter(enrollment__journey=journey)
        .values("step_id", "outcome")
        .annotate(n=Count("pk"))
    }
    # Why steps were skipped: the send policy's reason code (conversations.policy.Reason), or the condition.
    reasons: dict[int, dict[str, int]] = {}
    for row in (
        JourneyStepRun.objects.filter(enrollment__journey=journey, outcome=JourneyStepRun.Outcome.SKIPPED)
        .values("step_id", "detail")
        .annotate(n=Count("pk"))
    ):
        code = row["detail"].partition(":")[0] or "condition"
        reasons.setdefault(row["step_id"], {})[code] = reasons.get(row["step_id"], {}).get(code, 0) + row["n"]
    steps = [
        {"position": s.position, "step": str(s), "done": runs.get((s.pk, "done"), 0),
         "skipped": runs.get((s.pk, "skipped"), 0) + runs.get((s.pk, "stopped"), 0),
         "skip_reasons": reasons.get(s.pk, {})}
        for s in _steps(journey.pk)
    ]  # fmt: skip
    return {**counts, "steps": steps, "label": _("Journey report")}
