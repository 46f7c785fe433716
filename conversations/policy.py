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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import kinds
from accounts.models import Interaction, Subscriber
from content.models import Delivery, MassBatch, MessageTemplate, Push, SendPolicy

from .models import OutboundMessage

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
# quiet hours apply to what the account sends on its own initiative.
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


# --- the window ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    allowed: bool
    remaining: int
    reason: str  # the operator's words ("" when open)
    closes_at: dt.datetime | None = None
    code: str = ""  # Reason.OUTSIDE_WINDOW or Reason.WINDOW_LIMIT when closed

    def __iter__(self):  # allowed, remaining, reason = window(...)
        return iter((self.allowed, self.remaining, self.reason))


def _closed(code: str) -> Window:
    if code == Reason.WINDOW_LIMIT:
        text = _("WeChat's limit of customer-service messages since the subscriber's last message is reached. Wait "
                 "for them to write again, or send a template message.")  # fmt: skip
    else:
        text = _("The subscriber has not written to us in the last 48 hours: WeChat allows no customer-service "
                 "message now. Send a template message instead.")  # fmt: skip
    return Window(False, 0, text, None, code)


def windows(
    *,
    subscriber_ids: Collection[int],
    now: dt.datetime | None = None,
    exclude_message_id: int | None = None,
    exclude_push_id: int | None = None,
    before: Mapping[int, int] | None = None,
) -> dict[int, Window]:
    """WeChat's customer-service window of each subscriber, from what they did (accounts.Interaction, written by the
    callback, so never late) and the customer-service messages sent since (operator, auto-reply and journey
    messages, and customer-service pushes; failed and skipped ones do not count). At most three queries.

    `exclude_message_id`: the OutboundMessage about to be sent (it counts messages queued before it, not itself);
    `exclude_push_id`: the push being sent (its own claimed deliveries do not count);
    `before`: {subscriber id: message id} for a page of messages, each counting only its subscriber's messages
    queued before it."""
    now = now or timezone.now()
    ids = list(subscriber_ids)
    result = {pk: _closed(Reason.OUTSIDE_WINDOW) for pk in ids}
    if not ids:
        return result
    recent = Interaction.objects.filter(
        subscriber_id__in=ids, created_at__gte=now - MESSAGE_WINDOW, created_at__lte=now, kind__in=kinds.WINDOW_OPENING
    )
    opened = recent.values("subscriber_id").annotate(
        message=Max("created_at", filter=Q(kind__in=kinds.MESSAGES)),
        event=Max("created_at", filter=Q(kind__in=kinds.WINDOW_OPENING_EVENTS)),
    )
    spans: dict[int, list[tuple[dt.datetime, dt.datetime, int]]] = {}
    for row in opened:
        span = []
        if row["message"] is not None:
            span.append((row["message"], row["message"] + MESSAGE_WINDOW, MESSAGE_LIMIT))
        if row["event"] is not None and row["event"] + EVENT_WINDOW > now:
            span.append((row["event"], row["event"] + EVENT_WINDOW, EVENT_LIMIT))
        if span:
            spans[row["subscriber_id"]] = span
    if not spans:
        return result
    since = min(start for span in spans.values() for start, _e, _l in span)
    sent: dict[int, list[dt.datetime]] = {pk: [] for pk in spans}
    messages = OutboundMessage.objects.filter(
        Q(created_at__gte=since) | Q(sent_at__gte=since), subscriber_id__in=list(spans),
        kind=OutboundMessage.Kind.CUSTOM,
    ).exclude(status__in=(OutboundMessage.Status.FAILED, OutboundMessage.Status.SKIPPED))  # fmt: skip
    if exclude_message_id is not None:
        messages = messages.filter(pk__lt=exclude_message_id)
    for pk, sub_id, created_at, sent_at in messages.values_list("pk", "subscriber_id", "created_at", "sent_at"):
        if before is not None and sub_id in before and pk >= before[sub_id]:
            continue
        sent[sub_id].append(max(created_at, sent_at or created_at))
    from content.services.deliveries.rows import COUNTED

    pushed = Delivery.objects.filter(
        subscriber_id__in=list(spans), channel=Push.Channel.CUSTOM, claimed_at__gte=since, status__in=COUNTED
    )
    if exclude_push_id is not None:
        pushed = pushed.exclude(push_id=exclude_push_id)
    for sub_id, claimed_at in pushed.values_list("subscriber_id", "claimed_at"):
        sent[sub_id].append(claimed_at)
    for pk, span in spans.items():
        remaining, closes_at = max(
            ((limit - sum(1 for at in sent[pk] if at >= start), end) for start, end, limit in span),
            key=lambda x: x[0],
        )
        if remaining <= 0:
            result[pk] = _closed(Reason.WINDOW_LIMIT)
        else:
            result[pk] = Window(True, remaining, "", closes_at)
    return result


def window(*, subscriber: Subscriber, now: dt.datetime | None = None, exclude_message_id: int | None = None) -> Window:
    """One subscriber's customer-service window (see `windows`)."""
    return windows(subscriber_ids=[subscriber.pk], now=now, exclude_message_id=exclude_message_id)[subscriber.pk]


# --- quiet hours and quotas ------------------------------------------------------------------------------------------


def quiet_hours_end(policy: SendPolicy, now: dt.datetime) -> dt.datetime | None:
    """When the current quiet hours end, or None outside quiet hours."""
    if not policy.quiet_hours_enabled or policy.quiet_start == policy.quiet_end:
        return None
    tz = ZoneInfo(policy.quiet_timezone)
    local = now.astimezone(tz)
    start, end, t = policy.quiet_start, policy.quiet_end, local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, end, tzinfo=tz)


def day_start(now: dt.datetime) -> dt.datetime:
    """Midnight in Beijing: WeChat's quotas reset then."""
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: dt.datetime) -> dt.datetime:
    return day_start(now).replace(day=1)


def templates_used_today(*, now: dt.datetime, upper_bound: bool = False) -> int:
    """Template messages claimed today (pushes' deliveries and one-subscriber messages): WeChat's daily quota.
    `upper_bound`: a cheap bound instead (today's template pushes' recipients, not their rows)."""
    from content.services.deliveries.rows import COUNTED

    day = day_start(now)
    single = OutboundMessage.objects.filter(kind=OutboundMessage.Kind.TEMPLATE, created_at__gte=day).exclude(
        status__in=(OutboundMessage.Status.FAILED, OutboundMessage.Status.SKIPPED)
    )
    if upper_bound:
        pushes = Push.objects.filter(
            Q(started_at__gte=day) | Q(finished_at__gte=day) | Q(status=Push.Status.SENDING),
            channel=Push.Channel.TEMPLATE,
        ).aggregate(n=Sum("recipients"))["n"]
        return (pushes or 0) + single.count()
    return (
        single.count()
        + Delivery.objects.filter(channel=Push.Channel.TEMPLATE, claimed_at__gte=day, status__in=COUNTED).count()
    )


def mass_quota_reached(*, policy: SendPolicy, now: dt.datetime, push_id: int | None = None) -> bool:
    """A subscription account's mass sends of the day are used up (one a day)."""
    if policy.account_type != SendPolicy.AccountType.SUBSCRIPTION:
        return False
    today = MassBatch.objects.filter(sent_at__gte=day_start(now))
    if push_id is not None:
        today = today.exclude(push_id=push_id)
    return today.values("push_id").distinct().count() >= policy.mass_daily_quota


# --- consent (subscription notices) ----------------------------------------------------------------------------------


def consented(*, subscriber_ids: Collection[int], notice_template: Any, now: dt.datetime) -> set[int]:
    """The consent rule for subscription notices: the subscribers (of `subscriber_ids`) whose recorded consent to
    `notice_template` allows one more notice now (accepted, not withdrawn; a one-time acceptance not used yet), as
    content.services.notices records it from WeChat's popup and change events. One query for all of them."""
    if notice_template is None:
        return set()
    from content.services.notices import notice_consented_ids

    return notice_consented_ids(subscriber_ids=subscriber_ids, template=notice_template)


# --- deciding --------------------------------------------------------------------------------------------------------

TEMPLATE_FIELDS = ("id", "openid", "is_following", "pushes_paused", "max_pushes_per_week")


def decide_many(
    *,
    send: Send,
    subscriber_ids: Collection[int],
    now: dt.datetime | None = None,
    policy: SendPolicy | None = None,
    fields: Collection[str] = (),
) -> dict[int, Decision]:
    """The decision for each subscriber, in a few queries whatever their number (one for the subscribers with
    their caps and opt-outs, up to three for the window, one for consent, one or two for WeChat's quotas).

    `fields`: more Subscriber fields to load in the same query; the returned `Decisions` has the loaded rows in
    `.rows`."""
    now = now or timezone.now()
    policy = policy or SendPolicy.current()
    rules = RULES.get(send.source, _CHANNEL_RULES | {OPT_OUTS, CAPS, QUIET})
    ids = list(dict.fromkeys(subscriber_ids))
    rows = _facts(send, policy, ids, now, rules, fields)
    out = Decisions()
    out.rows = rows
    channel_never = _channel_never(send, policy, now, rules)
    undecided: list[int] = []
    for pk in ids:
        row = rows.get(pk)
        if row is None:
            out[pk] = _never(Reason.ERASED)
            continue
        reason = _person_never(send, policy, row, rules)
        if not reason and channel_never:
            reason = channel_never
        if reason:
            out[pk] = _never(reason)
        else:
            undecided.append(pk)
    if undecided and send.channel == Channel.CUSTOM and WINDOW in rules:
        open_windows = windows(subscriber_ids=undecided, now=now, exclude_message_id=send.message_id,
                               exclude_push_id=send.push.pk if send.push is not None else None,
                               before=dict(send.messages) if send.messages else None)  # fmt: skip
        for pk in list(undecided):
            if not open_windows[pk].allowed:
                out[pk] = _never(open_windows[pk].code)
                undecided.remove(pk)
    if undecided and send.channel == Channel.NOTICE and CONSENT in rules:
        ok = consented(subscriber_ids=undecided, notice_template=send.notice_template, now=now)
        for pk in list(undecided):
            if pk not in ok:
                out[pk] = _never(Reason.NO_CONSENT)
                undecided.remove(pk)
    quiet_end = None
    if QUIET in rules and not (send.push is not None and send.push.ignore_quiet_hours):
        quiet_end = quiet_hours_end(policy, now)
    for pk in undecided:
        out[pk] = Decision(Verdict.LATER, Reason.QUIET_HOURS, quiet_end) if quiet_end else NOW_OK
    return out


class Decisions(dict):
    """{subscriber id: Decision}, and `rows`: each subscriber's loaded fields."""

    rows: dict[int, dict[str, Any]]


def decide(
    *, send: Send, subscriber: Subscriber | int, now: dt.datetime | None = None, policy: SendPolicy | None = None
) -> Decision:
    """The decision for one subscriber (see `decide_many`)."""
    pk = subscriber if isinstance(subscriber, int) else subscriber.pk
    return decide_many(send=send, subscriber_ids=[pk], now=now, policy=policy)[pk]


def _channel_never(send: Send, policy: SendPolicy, now: dt.datetime, rules: frozenset[str]) -> str:
    """A reason that holds for every recipient of the send (the template's purpose, an account quota), or ""."""
    if send.channel == Channel.TEMPLATE and TEMPLATE_PURPOSE in rules:
        if send.template is None:
            return Reason.NO_TEMPLATE
        if getattr(send.template, "purpose", MessageTemplate.Purpose.SERVICE) == MessageTemplate.Purpose.MARKETING:
            allowed = send.push is not None and send.source == Source.PUSH and send.push.allow_marketing_template
            if not allowed:
                return Reason.TEMPLATE_MARKETING
    if QUOTAS in rules and send.push is None:  # a push's quotas are counted for its whole page (quotas.py)
        if send.channel == Channel.TEMPLATE:
            quota = policy.template_daily_quota
            if templates_used_today(now=now, upper_bound=True) >= quota and templates_used_today(now=now) >= quota:
                return Reason.QUOTA_TEMPLATE_DAILY
        if send.channel == Channel.MASS and mass_quota_reached(policy=policy, now=now):
            return Reason.QUOTA_MASS_DAILY
    return ""


def _person_never(send: Send, policy: SendPolicy, row: dict[str, Any], rules: frozenset[str]) -> str:
    if FOLLOWING in rules and not row["is_following"]:
        return Reason.NOT_FOLLOWING
    if OPT_OUTS in rules:
        if row["pushes_paused"]:
            return Reason.PAUSED
        if row.get("opted_out"):
            return Reason.TOPIC_OPT_OUT
    if CAPS in rules:
        push_cap = send.push.frequency_cap if send.push is not None else None
        cap = push_cap if push_cap is not None else policy.frequency_cap
        if row["max_pushes_per_week"] is not None:
            cap = row["max_pushes_per_week"] if push_cap is None else min(cap, row["max_pushes_per_week"])
        if row.get("recent", 0) >= cap:
            return Reason.FREQUENCY_CAP
    if (
        QUOTAS in rules
        and send.channel == Channel.MASS
        and policy.account_type == SendPolicy.AccountType.SERVICE
        and row.get("mass_month", 0) >= policy.mass_monthly_per_subscriber
    ):
        return Reason.QUOTA_MASS_MONTHLY
    return ""


def _facts(
    send: Send, policy: SendPolicy, ids: list[int], now: dt.datetime, rules: frozenset[str], fields: Collection[str]
) -> dict[int, dict[str, Any]]:
    """One query: each subscriber's state, recent sends (caps), topic opt-outs and mass sends this month."""
    from content.services.deliveries.rows import COUNTED

    if not ids:
        return {}
    qs = Subscriber.objects.filter(pk__in=ids)
    names = ["recent", "opted_out", "mass_month"]
    push_id = send.push.pk if send.push is not None else None
    if CAPS in rules:
        window_start = now - dt.timedelta(days=policy.frequency_window_days)
        recent = Delivery.objects.filter(subscriber_id=OuterRef("pk"), claimed_at__gte=window_start,
                                         status__in=COUNTED)  # fmt: skip
        if push_id is not None:
            recent = recent.exclude(push_id=push_id)
        recent = recent.order_by().values("subscriber_id").annotate(c=Count("id")).values("c")
        # What journeys sent on the account's initiative counts too.
        journey = OutboundMessage.objects.filter(
            subscriber_id=OuterRef("pk"), source=OutboundMessage.Source.JOURNEY, created_at__gte=window_start
        ).exclude(status__in=(OutboundMessage.Status.FAILED, OutboundMessage.Status.SKIPPED))
        if send.message_id is not None:
            journey = journey.exclude(pk=send.message_id)
        if send.messages:  # one message per subscriber: each row's own message is not counted
            journey = journey.exclude(pk__in=[message_id for _s, message_id in send.messages])
        journey = journey.order_by().values("subscriber_id").annotate(c=Count("id")).values("c")
        qs = qs.annotate(
            recent=Coalesce(Subquery(recent, output_field=IntegerField()), Value(0))
            + Coalesce(Subquery(journey, output_field=IntegerField()), Value(0))
        )
    else:
        qs = qs.annotate(recent=Value(0))
    if OPT_OUTS in rules and send.topic_ids:
        through = Subscriber.topics_opted_out.through
        qs = qs.annotate(
            opted_out=Exists(through.objects.filter(subscriber_id=OuterRef("pk"), topic_id__in=send.topic_ids))
        )
    else:
        qs = qs.annotate(opted_out=Value(False))
    if QUOTAS in rules and send.channel == Channel.MASS and policy.account_type == SendPolicy.AccountType.SERVICE:
        month = Delivery.objects.filter(
            subscriber_id=OuterRef("pk"), claimed_at__gte=month_start(now), status__in=COUNTED,
            channel__in=(Push.Channel.MASS_OPENID, Push.Channel.MASS_TAG),
        )  # fmt: skip
        if push_id is not None:
            month = month.exclude(push_id=push_id)
        month = month.order_by().values("subscriber_id").annotate(c=Count("id")).values("c")
        qs = qs.annotate(mass_month=Coalesce(Subquery(month, output_field=IntegerField()), Value(0)))
    else:
        qs = qs.annotate(mass_month=Value(0))
    return {row["id"]: row for row in qs.values(*{*TEMPLATE_FIELDS, *fields}, *names)}


# --- a journey's message: the first channel that applies -------------------------------------------------------------


class Choice(NamedTuple):
    """The channel a journey message takes (None when none applies) and the decision; `tried`: each channel's
    reason, for the record."""

    channel: str | None
    decision: Decision
    tried: tuple[tuple[str, str], ...] = ()


def journey_channel(
    *,
    subscriber: Subscriber,
    now: dt.datetime | None = None,
    template: Any = None,
    notice_template: Any = None,
    topic_ids: Sequence[int] = (),
    message_id: int | None = None,
    policy: SendPolicy | None = None,
) -> Choice:
    """A journey's message step takes the first channel that applies: a customer-service message inside the
    window; a subscription notice the person consented to; a service-type template. LATER (quiet hours) defers the
    whole step; when no channel applies the step skips with the reason (the person's own reason when it holds for
    every channel, else `no_channel` with each channel's reason in `tried`)."""
    return journey_channels(subscriber_ids=[subscriber.pk], now=now, template=template,
                            notice_template=notice_template, topic_ids=topic_ids, message_id=message_id,
                            policy=policy)[subscriber.pk]  # fmt: skip


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
    """`journey_channel` for the same message step to many subscribers: one `decide_many` per channel tried."""
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
