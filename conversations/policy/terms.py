"""The policy's vocabulary: verdicts, reason codes, channels, sources and the rules each source obeys, a
Decision, and what is to be sent (Send). WeChat's customer-service window limits are here too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from content.models import Push

# --- WeChat's customer-service window ------------------------------------------------------------------------------
# WeChat (客服消息下发规则): a message the person sent allows 5 customer-service messages within 48 hours; a follow,
# a QR scan or a menu click of the click / scancode_push / scancode_waitmsg kinds allows 3 within one minute.
# Nothing else opens it: not automatic LOCATION reports, not VIEW of a menu link, not a click on our tracked links.
# (accounts.kinds.WINDOW_OPENING names the kinds.) Beyond the time WeChat answers 45015, beyond the count 45047.
MESSAGE_WINDOW = dt.timedelta(hours=48)
MESSAGE_LIMIT = 5
EVENT_WINDOW = dt.timedelta(minutes=1)
EVENT_LIMIT = 3


class Verdict:
    NOW = "now"
    LATER = "later"
    NEVER = "never"


class Reason:
    """The stable reason codes (labels in content.reasons)."""

    ERASED = "erased"  # the subscriber row is gone (privacy erasure)
    NOT_FOLLOWING = "not_following"
    PAUSED = "paused"  # the person replied TD or paused pushes
    TOPIC_OPT_OUT = "topic_opt_out"
    FREQUENCY_CAP = "frequency_cap"
    QUIET_HOURS = "quiet_hours"  # LATER
    OUTSIDE_WINDOW = "outside_window"  # no customer-service window open (WeChat: 45015)
    WINDOW_LIMIT = "window_limit"  # the window's message count is used up (WeChat: 45047)
    TEMPLATE_MARKETING = "template_marketing"  # a marketing template without the push's explicit override
    NO_TEMPLATE = "no_template"  # a template message without a template
    NO_CONSENT = "no_consent"  # a subscription notice the person has not accepted
    QUOTA_TEMPLATE_DAILY = "quota_template_daily"
    QUOTA_MASS_DAILY = "quota_mass_daily"
    QUOTA_MASS_MONTHLY = "quota_mass_monthly"
    NO_CHANNEL = "no_channel"  # a journey message that no channel may carry


class Channel:
    CUSTOM = "custom"  # customer-service message (the window)
    TEMPLATE = "template"  # template message (service notices)
    MASS = "mass"  # mass send / news (WeChat's mass quotas)
    NOTICE = "notice"  # subscription notice (订阅通知: consent)


class Source:
    PUSH = "push"
    JOURNEY = "journey"
    AUTO_REPLY = "auto_reply"
    OPERATOR = "operator"
    CONFIRMATION = "confirmation"  # confirms a change the person just made (the preferences page)


# Which rules each source obeys. Channel rules (the window for customer-service messages, the template's purpose,
# consent for notices, WeChat's quotas) apply to every source; a person's own opt-outs and the account's caps and
# quiet hours apply to what the account sends on its own initiative (a journey's step to someone who followed or wrote
# in the last minutes, who is awake, is not held by quiet hours: decide.AWAKE).
FOLLOWING, OPT_OUTS, CAPS, QUIET = "following", "opt_outs", "caps", "quiet_hours"
WINDOW, TEMPLATE_PURPOSE, CONSENT, QUOTAS = "window", "template_purpose", "consent", "quotas"
_CHANNEL_RULES = frozenset({FOLLOWING, WINDOW, TEMPLATE_PURPOSE, CONSENT, QUOTAS})
RULES: dict[str, frozenset[str]] = {
    Source.PUSH: _CHANNEL_RULES | {OPT_OUTS, CAPS, QUIET},
    Source.JOURNEY: _CHANNEL_RULES | {OPT_OUTS, CAPS, QUIET},
    Source.AUTO_REPLY: _CHANNEL_RULES | {OPT_OUTS},
    Source.OPERATOR: _CHANNEL_RULES,
    # The person's own change, confirmed to them: like a reply, it ignores their opt-outs (a confirmation of "pause
    # pushes" must reach them), caps and quiet hours; WeChat's channel rules (the window) still apply.
    Source.CONFIRMATION: _CHANNEL_RULES,
}


class Decision(NamedTuple):
    verdict: str
    reason: str = ""
    at: dt.datetime | None = None  # LATER: when to try again

    @property
    def allowed(self) -> bool:
        return self.verdict == Verdict.NOW


NOW_OK = Decision(Verdict.NOW)


def _never(reason: str) -> Decision:
    return Decision(Verdict.NEVER, reason)


@dataclass(frozen=True, kw_only=True)
class Send:
    """What is to be sent, as the policy needs to know it.

    `push`: the push being sent (its own deliveries do not count against caps or the window; its overrides);
    `message_id`: the OutboundMessage being decided (it does not count against the window or caps itself);
    `topic_ids`: the topics of its content (topic opt-outs); `template` / `notice_template`: what it sends."""

    channel: str
    source: str
    template: Any = None
    notice_template: Any = None
    topic_ids: tuple[int, ...] = ()
    push: Any = None
    message_id: int | None = None
    # A page of OutboundMessages being decided together: (subscriber id, message id), one message per subscriber;
    # each message is not counted against its own window or caps (as `message_id` for one).
    messages: tuple[tuple[int, int], ...] = ()

    @classmethod
    def for_push(cls, push: Push, *, topic_ids: Sequence[int] | None = None) -> Send:
        if push.is_mass:
            channel = Channel.MASS
        elif push.channel == Push.Channel.CUSTOM:
            channel = Channel.CUSTOM
        elif push.channel == Push.Channel.TEMPLATE:
            channel = Channel.TEMPLATE
        else:  # a channel added later (subscription notices: `notices`)
            channel = str(push.channel)
        if topic_ids is None:
            topic_ids = list(push.article.topics.values_list("pk", flat=True)) if push.article_id else []
        notice = getattr(push, "notice_template", None) if getattr(push, "notice_template_id", None) else None
        return cls(channel=channel, source=Source.PUSH, template=push.template if push.template_id else None,
                   notice_template=notice, topic_ids=tuple(topic_ids), push=push)  # fmt: skip
