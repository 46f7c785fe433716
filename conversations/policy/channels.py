"""A journey's message: the first channel that applies, for a batch of subscribers (journey_channels)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from django.utils import timezone

from content.models import SendPolicy

from .decide import decide_many
from .terms import Channel, Decision, Reason, Send, Source, Verdict, _never

# --- a journey's message: the first channel that applies -------------------------------------------------------------


class Choice(NamedTuple):
    """The channel a journey message takes (None when none applies) and the decision; `tried`: each channel's
    reason, for the record."""

    channel: str | None
    decision: Decision
    tried: tuple[tuple[str, str], ...] = ()


def journey_channels(
    *,
    subscriber_ids: Collection[int],
    now: dt.datetime | None = None,
    template: Any = None,
    notice_template: Any = None,
    topic_ids: Sequence[int] = (),
    message_id: int | None = None,
    policy: SendPolicy | None = None,
) -> dict[int, Choice]:
    """A journey's message step takes the first channel that applies, for each of these subscribers: a
    customer-service message inside the window; a subscription notice the person consented to; a service-type
    template. LATER (quiet hours) defers the whole step; when no channel applies the step skips with the reason (the
    person's own reason when it holds for every channel, else `no_channel` with each channel's reason in `tried`).
    One `decide_many` per channel tried."""
    now = now or timezone.now()
    policy = policy or SendPolicy.current()
    undecided = list(dict.fromkeys(subscriber_ids))
    tried: dict[int, list[tuple[str, str]]] = {pk: [] for pk in undecided}
    out: dict[int, Choice] = {}
    candidates = [(Channel.CUSTOM, None, None), (Channel.NOTICE, None, notice_template),
                  (Channel.TEMPLATE, template, None)]  # fmt: skip
    for channel, tpl, notice in candidates:
        if not undecided:
            break
        if (channel == Channel.NOTICE and notice is None) or (channel == Channel.TEMPLATE and tpl is None):
            for pk in undecided:  # the step names no subscription notice / no template
                tried[pk].append((channel, Reason.NO_TEMPLATE))
            continue
        send = Send(channel=channel, source=Source.JOURNEY, template=tpl, notice_template=notice,
                    topic_ids=tuple(topic_ids), message_id=message_id)  # fmt: skip
        decisions = decide_many(send=send, subscriber_ids=undecided, now=now, policy=policy)
        left = []
        for pk in undecided:
            decision = decisions[pk]
            if decision.verdict != Verdict.NEVER:
                out[pk] = Choice(channel, decision, tuple(tried[pk]))
            elif decision.reason in PERSONAL:
                out[pk] = Choice(None, decision, (*tried[pk], (channel, decision.reason)))
            else:
                tried[pk].append((channel, decision.reason))
                left.append(pk)
        undecided = left
    for pk in undecided:
        out[pk] = Choice(None, _never(Reason.NO_CHANNEL), tuple(tried[pk]))
    return out


# Reasons about the person, whatever the channel.
PERSONAL = frozenset({Reason.ERASED, Reason.NOT_FOLLOWING, Reason.PAUSED, Reason.TOPIC_OPT_OUT, Reason.FREQUENCY_CAP})


def choice_detail(choice: Choice) -> str:
    """What a journey run records: the reason code, and each channel's when none applied."""
    if choice.channel is not None:
        return choice.channel
    if choice.decision.reason != Reason.NO_CHANNEL:
        return choice.decision.reason
    return f"{Reason.NO_CHANNEL}: " + ", ".join(f"{channel}={reason}" for channel, reason in choice.tried)
