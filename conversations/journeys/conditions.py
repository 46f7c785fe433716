"""A journey step's condition, given what the batch loaded for it (conversations.journeys.steps)."""

from __future__ import annotations

from accounts.models import Subscriber

from ..models import JourneyStep

C = JourneyStep.Condition


def condition_holds(
    step: JourneyStep, subscriber: Subscriber, *, tagged: bool = False, opted_out: bool = False,
    window_open: bool = False,
) -> bool:  # fmt: skip
    """Whether the step's condition holds; what needs a query is given: whether the subscriber has the condition's
    tag, has opted out of its topic, and whether their customer-service window is open."""
    if step.condition in ("", None):
        return True
    if step.condition == C.HAS_TAG:
        return tagged
    if step.condition == C.NOT_TAG:
        return not tagged
    if step.condition == C.STAGE_IN:
        return subscriber.stage in [s.strip() for s in step.condition_value.split(",") if s.strip()]
    if step.condition == C.PREFERS_TOPIC:
        return not opted_out and not subscriber.pushes_paused
    if step.condition == C.PUSHES_ACTIVE:
        return not subscriber.pushes_paused
    if step.condition == C.IN_WINDOW:
        return window_open
    if step.condition == C.SCORE_AT_LEAST:
        return subscriber.score >= int(step.condition_value or 0)
    if step.condition == C.NOT_CONVERTED:
        return subscriber.stage != Subscriber.Stage.CONVERTED
    return False
