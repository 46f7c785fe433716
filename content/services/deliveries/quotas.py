"""The send policy for a page of a push's recipients (conversations.policy decides: the person's state, opt-outs,
frequency cap, WeChat's customer-service window and per-subscriber mass quota), and WeChat's account quotas counted
over the page: template messages per day, mass sends per day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from ... import templating
from ...models import Push, SendPolicy
from .rows import DeliveryUpdate, Sendable, skipped


class QuotaSplit(NamedTuple):
    """The recipients within WeChat's quotas, and the outcomes of those over them (skipped)."""

    sendable: list[Sendable]
    over: list[DeliveryUpdate]


def quiet_hours_end(policy: SendPolicy, now: dt.datetime) -> dt.datetime | None:
    """When the current quiet hours end, or None outside quiet hours (conversations.policy)."""
    from conversations import policy as send_policy

    return send_policy.quiet_hours_end(policy, now)


class PageDecisions(NamedTuple):
    """The send policy's decision for each recipient of a chunk, and their fields for rendering."""

    decisions: dict[int, Any]
    rows: dict[int, dict[str, Any]]


def decisions_for(
    push: Push,
    policy: SendPolicy,
    sub_ids: list[int],
    now: dt.datetime,
    fields: Sequence[str] = templating.SUBSCRIBER_FIELDS,
) -> PageDecisions:
    """The send policy (conversations.policy) for a chunk of a push's recipients: a few queries for the whole
    chunk, the recipients' rendering fields (`fields`, with their id and openid) loaded by the same query."""
    from conversations import policy as send_policy

    decisions = send_policy.decide_many(
        send=send_policy.Send.for_push(push), subscriber_ids=sub_ids, now=now, policy=policy, fields=fields
    )
    return PageDecisions(decisions, decisions.rows)


def quotas_apply(
    push: Push, policy: SendPolicy, sendable: Sequence[Sendable], now: dt.datetime, *, claimed: int
) -> QuotaSplit:
    """WeChat's quotas, counted from our own delivery rows: template messages per day, mass sends per day."""
    from conversations import policy as send_policy

    sendable = list(sendable)
    if push.channel == Push.Channel.TEMPLATE:
        # Cheap bound first (pushes' recipients, one-subscriber messages): when they fit, no row is counted. The
        # chunk's own claimed rows are among the used ones.
        quota = policy.template_daily_quota
        if send_policy.templates_used_today(now=now, upper_bound=True) + claimed <= quota:
            return QuotaSplit(sendable, [])
        used = send_policy.templates_used_today(now=now)
        allowed = max(0, quota - (used - claimed))
        over = [skipped(s.delivery_id, send_policy.Reason.QUOTA_TEMPLATE_DAILY, now) for s in sendable[allowed:]]
        return QuotaSplit(sendable[:allowed], over)
    if push.is_mass and send_policy.mass_quota_reached(policy=policy, now=now, push_id=push.pk):
        return QuotaSplit([], [skipped(s.delivery_id, send_policy.Reason.QUOTA_MASS_DAILY, now) for s in sendable])
    return QuotaSplit(sendable, [])
