"""Running journey steps: the due steps of a batch of enrollments, with a few statements per batch, not per
enrollment.

* Claim: the batch's rows are locked with SELECT ... FOR UPDATE SKIP LOCKED (active, due): two tasks given the same
  batch never run the same enrollment; the second skips the locked rows, or finds them no longer due.
* Rounds: each round takes at most one enrollment per subscriber (in the batch's order), so that a person's
  messages are queued in the order their steps ran and the customer-service window of a later one counts the
  earlier ones. A round loads its subscribers (one query) and what the conditions need (tags, topic opt-outs,
  windows: one query each, when used), and acts per step: tags and scores in a statement or two per step,
  notifications in one INSERT, and every message step's channel from `policy.journey_channels` (one per step and
  topics). LATER (quiet hours) leaves the enrollment at its step, due when they end; no channel records the step
  as skipped with the reason; the round's OutboundMessages are one INSERT. An enrollment whose next step has no
  wait takes part in the next round (waits are `due_at`: they survive restarts).
* Write: the step runs in one INSERT (UNIQUE (enrollment, step) as the last guard), the enrollments in one
  UPDATE ... FROM (VALUES ...) guarded by the position they were claimed at, and one page task sends the messages
  after commit (conversations.outbound; the worker asks the send policy again before sending).

A batch that fails is run again one enrollment at a time, so that one broken enrollment does not hold back the
others; it is retried by the next advance (every minute).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Subscriber
from content.models import SendPolicy
from wechat_crm.db import rows_insert

from .. import policy, scores, services
from ..models import JourneyEnrollment, JourneyStep, JourneyStepRun, Notification, OutboundMessage
from .conditions import condition_holds
from .content import _content, _text

__all__ = ["condition_holds", "enqueue_advance", "journeys_advance", "steps_run", "steps_run_created"]

logger = logging.getLogger(__name__)
ADVANCE_BATCH = 200
E = JourneyEnrollment.Status
A = JourneyStep.Action
C = JourneyStep.Condition
R = JourneyStepRun.Outcome


def enqueue_advance() -> None:
    """After commit, a task runs the due steps (the beat's every-minute task does, if this enqueue is lost)."""
    from ..tasks import journeys_advance_task

    def enqueue() -> None:
        try:
            journeys_advance_task.delay()
        except Exception:  # the beat task advances it within a minute
            logger.warning("could not enqueue the journey advance", exc_info=True)

    transaction.on_commit(enqueue)


def journeys_advance(*, now: dt.datetime | None = None, limit: int = ADVANCE_BATCH) -> int:
    """Run every due step, a batch at a time (several steps of one enrollment when their waits are over). Safe to run
    concurrently (SKIP LOCKED) and twice. Returns how many steps ran (and enrollments deferred or completed)."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            claimed = _claim(now=now, limit=limit)
            done += _run_claimed(claimed, now)
        if len(claimed) < limit:
            return done


def steps_run(*, enrollment_ids: Collection[int], now: dt.datetime | None = None) -> int:
    """Run the due steps of these enrollments now, those no other task holds (the follow-ups run a follow's first
    step this way, in their own transaction). Returns how many steps ran."""
    now = now or timezone.now()
    if not enrollment_ids:
        return 0
    with transaction.atomic():
        return _run_claimed(_claim(now=now, limit=len(enrollment_ids), ids=enrollment_ids), now)


def steps_run_created(*, enrollments: Sequence[JourneyEnrollment], now: dt.datetime) -> int:
    """Run the due first steps of enrollments this transaction has just inserted (`entry.journeys_enter`): no other
    transaction sees them before this one commits, so they need no claim, and they are the rows as inserted (their
    journey loaded). Returns how many steps ran."""
    return _run_claimed([e for e in enrollments if e.status == E.ACTIVE and e.due_at and e.due_at <= now], now)


def _claim(*, now: dt.datetime, limit: int, ids: Collection[int] | None = None) -> list[JourneyEnrollment]:
    rows = (
        JourneyEnrollment.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("journey")
        .filter(status=E.ACTIVE, due_at__lte=now)
    )
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    return list(rows.order_by("due_at", "id")[:limit])


def _run_claimed(enrollments: Sequence[JourneyEnrollment], now: dt.datetime) -> int:
    if not enrollments:
        return 0
    try:
        with transaction.atomic():
            return _Run(enrollments, now).execute()
    except Exception:
        if len(enrollments) == 1:
            logger.exception("journey enrollment %s: step failed; retried next minute", enrollments[0].pk)
            return 0
        logger.exception("a batch of %d journey enrollments failed; running it one by one", len(enrollments))
        return sum(_run_claimed([one], now) for one in enrollments)


# --- a batch ---------------------------------------------------------------------------------------------------------


@dataclass
class _State:
    """An enrollment's progress during the run (written at the end in one UPDATE)."""

    index: int
    enrollment: JourneyEnrollment
    position: int
    status: str
    due_at: dt.datetime | None
    finished_at: dt.datetime | None
    moved: bool = False  # its step ran (or it finished) in the last round: its next step may be due too


class _Run:
    def __init__(self, enrollments: Sequence[JourneyEnrollment], now: dt.datetime) -> None:
        self.now = now
        self.states = [_State(n, e, e.next_position, e.status, e.due_at, e.finished_at)
                       for n, e in enumerate(enrollments)]  # fmt: skip
        self.steps: dict[int, list[JourneyStep]] = {}
        for step in (
            JourneyStep.objects.filter(journey_id__in={e.journey_id for e in enrollments})
            .select_related("article", "template", "notice_template", "tag")
            .order_by("journey_id", "position", "id")
        ):
            self.steps.setdefault(step.journey_id, []).append(step)
        self.runs: list[JourneyStepRun] = []
        self.contents: dict[tuple[int, int | None], tuple[str, list[Any], list[int]]] = {}
        self.trackers: dict[int, Any] = {}
        self.send_policy: SendPolicy | None = None
        self.queued = False
        self.done = 0

    def execute(self) -> int:
        pending = list(self.states)
        while pending:
            now_round, later, seen = [], [], set()
            for state in pending:
                (later if state.enrollment.subscriber_id in seen else now_round).append(state)
                seen.add(state.enrollment.subscriber_id)
            for state in now_round:
                state.moved = False
            self._round(now_round)
            going_on = [s for s in now_round if s.moved and s.status == E.ACTIVE and s.due_at and s.due_at <= self.now]
            pending = sorted(later + going_on, key=lambda s: s.index)
        self._write()
        return self.done

    # A round: at most one enrollment per subscriber.

    def _round(self, states: list[_State]) -> None:
        todo: list[tuple[_State, JourneyStep]] = []
        for state in states:
            steps = self.steps.get(state.enrollment.journey_id, [])
            if state.position >= len(steps) or not state.enrollment.journey.is_active:
                state.status, state.finished_at, state.due_at = E.COMPLETED, self.now, None
                self.done += 1
                continue
            todo.append((state, steps[state.position]))
        if not todo:
            return
        subscribers = Subscriber.objects.in_bulk({s.enrollment.subscriber_id for s, _step in todo})
        holds = self._conditions(todo, subscribers)
        acting: dict[str, list[tuple[_State, JourneyStep, Subscriber]]] = {}
        for state, step in todo:
            subscriber = subscribers.get(state.enrollment.subscriber_id)
            if subscriber is None:  # erased meanwhile
                self._ran(state, step, R.SKIPPED, policy.Reason.ERASED)
            elif not holds[state.index]:
                self._ran(state, step, R.STOPPED if step.on_fail == JourneyStep.OnFail.STOP else R.SKIPPED, "")
            else:
                acting.setdefault(step.action, []).append((state, step, subscriber))
        self._tags(acting.get(A.ADD_TAG, []), add=True)
        self._tags(acting.get(A.REMOVE_TAG, []), add=False)
        self._scores(acting.get(A.SCORE, []))
        self._notify(acting.get(A.NOTIFY, []))
        self._messages(acting.get(A.MESSAGE, []))

    def _conditions(
        self, todo: list[tuple[_State, JourneyStep]], subscribers: dict[int, Subscriber]
    ) -> dict[int, bool]:
        ids = {s.enrollment.subscriber_id for s, _step in todo}
        tag_ids = {step.condition_tag_id for _s, step in todo if step.condition in (C.HAS_TAG, C.NOT_TAG)}
        topic_ids = {step.condition_topic_id for _s, step in todo if step.condition == C.PREFERS_TOPIC}
        window_ids = {s.enrollment.subscriber_id for s, step in todo if step.condition == C.IN_WINDOW}
        tagged = set(
            Subscriber.tags.through.objects.filter(tag_id__in=tag_ids, subscriber_id__in=ids).values_list(
                "subscriber_id", "tag_id"
            )
        ) if tag_ids else set()  # fmt: skip
        opted_out = set(
            Subscriber.topics_opted_out.through.objects.filter(topic_id__in=topic_ids, subscriber_id__in=ids)
            .values_list("subscriber_id", "topic_id")
        ) if topic_ids else set()  # fmt: skip
        windows = policy.windows(subscriber_ids=window_ids, now=self.now) if window_ids else {}
        holds = {}
        for state, step in todo:
            pk = state.enrollment.subscriber_id
            if pk not in subscribers:
                continue
            holds[state.index] = condition_holds(
                step, subscribers[pk], tagged=(pk, step.condition_tag_id) in tagged,
                opted_out=(pk, step.condition_topic_id) in opted_out,
                window_open=pk in windows and windows[pk].allowed,
            )  # fmt: skip
        return holds

    def _ran(self, state: _State, step: JourneyStep, outcome: str, detail: str) -> None:
        """Record the step's run and move the enrollment on (or end it)."""
        self.runs.append(JourneyStepRun(enrollment_id=state.enrollment.pk, step=step, outcome=outcome,
                                        detail=detail[:255], at=self.now))  # fmt: skip
        steps = self.steps[state.enrollment.journey_id]
        nxt = state.position + 1
        if outcome == R.STOPPED or nxt >= len(steps):
            state.status = E.STOPPED if outcome == R.STOPPED else E.COMPLETED
            state.finished_at, state.due_at = self.now, None
        else:
            state.due_at = self.now + steps[nxt].wait
        state.position, state.moved = nxt, True
        self.done += 1

    def _by_step(self, items: list[tuple[_State, JourneyStep, Subscriber]]):
        groups: dict[int, tuple[JourneyStep, list[tuple[_State, Subscriber]]]] = {}
        for state, step, subscriber in items:
            groups.setdefault(step.pk, (step, []))[1].append((state, subscriber))
        return groups.values()

    def _tags(self, items: list[tuple[_State, JourneyStep, Subscriber]], *, add: bool) -> None:
        from accounts import tagging

        for step, members in self._by_step(items):
            change = tagging.tag_add if add else tagging.tag_remove
            change(subscribers=[sub.pk for _s, sub in members], tag=step.tag)
            for state, _sub in members:
                self._ran(state, step, R.DONE, step.tag.name)

    def _scores(self, items: list[tuple[_State, JourneyStep, Subscriber]]) -> None:
        for step, members in self._by_step(items):
            ids = [sub.pk for _s, sub in members]
            scores.scores_change(subscriber_ids=ids, points=step.score_delta, at=self.now,
                                 reason=f"journey {step.journey_id}")  # fmt: skip
            for state, _sub in members:
                self._ran(state, step, R.DONE, f"{step.score_delta:+d}")

    def _notify(self, items: list[tuple[_State, JourneyStep, Subscriber]]) -> None:
        notes = []
        for state, step, subscriber in items:
            topic_name, _articles, _topics = self.content(step, state.enrollment.context.get("topic_id"))
            text = _text(step, subscriber, topic_name)
            notes.append(Notification(subscriber=subscriber, journey_id=state.enrollment.journey_id, text=text,
                                      created_at=self.now))  # fmt: skip
            logger.warning("journey %s: operator notified about subscriber %s: %s", state.enrollment.journey_id,
                           subscriber.pk, text)  # fmt: skip
            self._ran(state, step, R.DONE, "notified")
        Notification.objects.bulk_create(notes)

    def content(self, step: JourneyStep, topic_id: int | None) -> tuple[str, list[Any], list[int]]:
        key = (step.pk, topic_id)
        if key not in self.contents:
            self.contents[key] = _content(step, topic_id)
        return self.contents[key]

    def _messages(self, items: list[tuple[_State, JourneyStep, Subscriber]]) -> None:
        """The send policy picks each message's first channel that applies (customer-service inside the window, a
        subscription notice the person consented to, a service-type template) or says why none does."""
        if not items:
            return
        groups: dict[tuple[int, tuple[int, ...]], tuple[JourneyStep, list[tuple[_State, Subscriber]]]] = {}
        for state, step, subscriber in items:
            _name, _articles, topic_ids = self.content(step, state.enrollment.context.get("topic_id"))
            groups.setdefault((step.pk, tuple(topic_ids)), (step, []))[1].append((state, subscriber))
        self.send_policy = self.send_policy or SendPolicy.current()
        rows = []
        for (_pk, topic_ids), (step, members) in groups.items():
            choices = policy.journey_channels(
                subscriber_ids=[sub.pk for _s, sub in members], now=self.now, template=step.template,
                notice_template=step.notice_template, topic_ids=topic_ids, policy=self.send_policy,
            )  # fmt: skip
            for state, subscriber in members:
                choice = choices[subscriber.pk]
                if choice.decision.verdict == policy.Verdict.LATER:  # quiet hours: the step runs when they end
                    state.due_at = choice.decision.at
                    self.done += 1
                elif choice.channel is None:
                    self._ran(state, step, R.SKIPPED, policy.choice_detail(choice))
                else:
                    row = self._message(step, state, subscriber, choice.channel)
                    if row is None:
                        self._ran(state, step, R.SKIPPED, "nothing_to_send")
                    else:
                        rows.append(row)
                        self._ran(state, step, R.DONE, choice.channel)
        if rows:  # one INSERT for the round (a dedupe key used already is left alone)
            rows_insert(rows, ignore_conflicts=True)
            self.queued = True

    def _track(self, article: Any, subscriber_id: int) -> str:
        from content.services import link_tracker

        if article.pk not in self.trackers:
            self.trackers[article.pk] = link_tracker(article.public_url(), content_id=article.pk)
        return self.trackers[article.pk](subscriber_id)

    def _message(
        self, step: JourneyStep, state: _State, subscriber: Subscriber, channel: str
    ) -> OutboundMessage | None:
        topic_name, articles, _topics = self.content(step, state.enrollment.context.get("topic_id"))
        text = _text(step, subscriber, topic_name)
        common = {"subscriber": subscriber, "source": OutboundMessage.Source.JOURNEY, "created_at": self.now,
                  "dedupe_key": f"journey:{state.enrollment.pk}:{step.pk}"}  # fmt: skip
        article = articles[0] if articles else None
        if channel == policy.Channel.CUSTOM:
            if len(articles) == 1:  # one article: a card (the text as its description)
                payload = services.custom_news_payload(subscriber, articles, description=text)
            else:  # several: the text and one tracked link per article
                lines = [text] if text else []
                lines += [f"{art.title} {self._track(art, subscriber.pk)}" for art in articles]
                text = "\n".join(lines)
                if not text:
                    return None
                payload = services.custom_text_payload(subscriber, text)
            return OutboundMessage(kind=OutboundMessage.Kind.CUSTOM, text=text, payload=payload, **common)
        if channel == policy.Channel.NOTICE:  # the policy found the person's consent; `notices` sends it
            payload = services.notice_payload(subscriber, step.notice_template, values=step.notice_values,
                                              article=article)  # fmt: skip
            return OutboundMessage(kind=OutboundMessage.Kind.NOTICE, text=step.notice_template.title, payload=payload,
                                   notice_template=step.notice_template, **common)  # fmt: skip
        payload = services.template_payload(subscriber, step.template, article=article)
        return OutboundMessage(kind=OutboundMessage.Kind.TEMPLATE, text=step.template.title, payload=payload,
                               template=step.template, **common)  # fmt: skip

    # The writes: the runs, the enrollments, the page task.

    def _write(self) -> None:
        rows_insert(self.runs)
        changed = [s for s in self.states
                   if (s.position, s.status, s.due_at, s.finished_at) != (s.enrollment.next_position,
                       s.enrollment.status, s.enrollment.due_at, s.enrollment.finished_at)]  # fmt: skip
        if changed:
            _enrollments_write(changed)
        if self.queued:
            from ..outbound import outbound_page_enqueue

            outbound_page_enqueue()


class RanAlready(Exception):
    """An enrollment was moved on by someone else while this run held it (cannot happen under the row lock)."""


def _enrollments_write(states: Sequence[_State]) -> None:
    """One UPDATE ... FROM (VALUES ...) for the batch, only on rows still at the position they were claimed at."""
    if connection.vendor != "postgresql":
        for s in states:
            claimed = JourneyEnrollment.objects.filter(pk=s.enrollment.pk, next_position=s.enrollment.next_position)
            updated = claimed.update(next_position=s.position, status=s.status, due_at=s.due_at,
                                     finished_at=s.finished_at)  # fmt: skip
            if not updated:
                raise RanAlready(s.enrollment.pk)
        return
    table = JourneyEnrollment._meta.db_table
    one = "(%s::bigint, %s::integer, %s::integer, %s::varchar, %s::timestamptz, %s::timestamptz)"
    sql = (
        f"UPDATE {table} AS e SET next_position = v.position, status = v.status, due_at = v.due_at, "  # noqa: S608
        f"finished_at = v.finished_at FROM (VALUES {', '.join([one] * len(states))}) "
        "AS v(id, claimed_at, position, status, due_at, finished_at) "
        "WHERE e.id = v.id AND e.next_position = v.claimed_at"
    )
    params = [value for s in states for value in (s.enrollment.pk, s.enrollment.next_position, s.position, s.status,
                                                    s.due_at, s.finished_at)]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != len(states):
            raise RanAlready([s.enrollment.pk for s in states])
