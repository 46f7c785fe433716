"""The send policy: ONE answer, for every outgoing message from every path, to "may this go to this person now?".

    decide_many(send=Send(...), subscriber_ids=[...], now=...) -> {subscriber id: Decision}   (a few queries)
    decide(send=Send(...), subscriber=..., now=...) -> Decision                                (one subscriber)
    windows(subscriber_ids=[...], now=...) -> {subscriber id: Window}    WeChat's customer-service window
    window(subscriber=..., now=...) -> Window
    journey_channels(subscriber_ids=[...], now=..., ...) -> {id: Choice} a journey's first channel that applies
    consented(subscriber_ids=..., notice_template=..., now=...) -> set   HOOK: subscription-notice consent (`notices`)
    consent_refusals(send=Send(...), subscribers=<queryset>, now=...)   the same queryset, `consent_refused` annotated

A Decision is NOW, LATER (quiet hours: `at` says when) or NEVER, with a stable reason code (`Reason`), recorded on
the message's row (Delivery.reason, OutboundMessage.skip_reason, JourneyStepRun.detail) and shown in reports.

Who asks: pushes (content.services.deliveries, per page of recipients), journeys (conversations.journeys),
auto-replies that send templates and operator replies (conversations.services: when the message is created, and
again when the worker is about to send it), subscription notices (`notices`). Tests sent to oneself (a push's
"Send a test to me", WeChat's mass preview) are exempt.

Which rules apply depends on where the message comes from (RULES below): replies answer the person, so operator
replies ignore opt-outs, caps and quiet hours; everything the account sends on its own initiative obeys them all.

Import graph: this module reads accounts, content and conversations models; content's push path imports it
inside functions (content does not depend on conversations at import time).

The package, by concern: terms.py (verdicts, reasons, channels, sources, rules, Send), window.py (WeChat's
customer-service window), limits.py (quiet hours, quotas, consent), decide.py (decide_many, decide) and
channels.py (a journey's channel). Callers use the names below as `policy.<name>`.
"""

from .channels import Choice, choice_detail, journey_channels
from .decide import consent_refusals, decide, decide_many
from .limits import consented, mass_quota_reached, quiet_hours_end, templates_used_today
from .terms import (
    EVENT_LIMIT,
    EVENT_WINDOW,
    MESSAGE_LIMIT,
    MESSAGE_WINDOW,
    RULES,
    Channel,
    Decision,
    Reason,
    Send,
    Source,
    Verdict,
)
from .window import Window, window, windows

__all__ = [
    "EVENT_LIMIT",
    "EVENT_WINDOW",
    "MESSAGE_LIMIT",
    "MESSAGE_WINDOW",
    "RULES",
    "Channel",
    "Choice",
    "Decision",
    "Reason",
    "Send",
    "Source",
    "Verdict",
    "Window",
    "choice_detail",
    "consent_refusals",
    "consented",
    "decide",
    "decide_many",
    "journey_channels",
    "mass_quota_reached",
    "quiet_hours_end",
    "templates_used_today",
    "window",
    "windows",
]
