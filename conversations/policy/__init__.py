"""The send policy: ONE answer, for every outgoing message from every path, to "may this go to this person now?".

    decide_many(send=Send(...), subscriber_ids=[...], now=...) -> {subscriber id: Decision}   (a few queries)
    decide(send=Send(...), subscriber=..., now=...) -> Decision                                (one subscriber)
    windows(subscriber_ids=[...], now=...) -> {subscriber id: Window}    WeChat's customer-service window
    window(subscriber=..., now=...) -> Window
    journey_channel(subscriber=..., now=..., ...) -> Choice              a journey's first channel that applies
    journey_channels(subscriber_ids=[...], now=..., ...) -> {id: Choice} the same for a batch (a few queries)
    consented(subscriber_ids=..., notice_template=..., now=...) -> set   HOOK: subscription-notice consent (`notices`)

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

from .channels import PERSONAL, Choice, choice_detail, journey_channel, journey_channels  # noqa: F401
from .decide import TEMPLATE_FIELDS, Decisions, decide, decide_many  # noqa: F401
from .limits import consented, day_start, mass_quota_reached, month_start, quiet_hours_end, templates_used_today  # noqa: F401
from .terms import (  # noqa: F401
    _CHANNEL_RULES,
    CAPS,
    CONSENT,
    EVENT_LIMIT,
    EVENT_WINDOW,
    FOLLOWING,
    MESSAGE_LIMIT,
    MESSAGE_WINDOW,
    NOW_OK,
    OPT_OUTS,
    QUIET,
    QUOTAS,
    RULES,
    TEMPLATE_PURPOSE,
    WINDOW,
    Channel,
    Decision,
    Reason,
    Send,
    Source,
    Verdict,
)
from .window import Window, window, windows  # noqa: F401
