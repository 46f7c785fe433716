"""Deciding: one answer for a page of subscribers (decide_many, a few queries) or for one (decide)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Subscriber
from accounts.selectors import touches_pending
from content.models import Delivery, MessageTemplate, Push, SendPolicy
from wechat_crm.db import rows_by_id

from ..models import OutboundMessage
from .limits import consented, mass_quota_reached, month_start, quiet_hours_end, templates_used_today
from .terms import (
    _CHANNEL_RULES,
    CAPS,
    CONSENT,
    FOLLOWING,
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
    _never,
)
from .window import windows

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
    rules = _rules(send)
    ids = list(dict.fromkeys(subscriber_ids))
    quiet_end = None
    if QUIET in rules and not (send.push is not None and send.push.ignore_quiet_hours):
        quiet_end = quiet_hours_end(policy, now)
    awake_check = quiet_end is not None and send.source == Source.JOURNEY
    if awake_check:
        fields = {*fields, "last_interaction_at"}
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
    awake: set[int] = set()
    if quiet_end is not None and awake_check and undecided:
        awake = {pk for pk in undecided if _awake(rows[pk], now)}
        if len(awake) < len(undecided):  # a message whose follow-ups (they move last_interaction_at) are pending
            awake |= set(
                touches_pending(since=now - AWAKE)
                .filter(subscriber_id__in=[pk for pk in undecided if pk not in awake], created_at__lte=now + AWAKE)
                .values_list("subscriber_id", flat=True)
            )
    for pk in undecided:
        asleep = quiet_end is not None and pk not in awake
        out[pk] = Decision(Verdict.LATER, Reason.QUIET_HOURS, quiet_end) if asleep else NOW_OK
    return out


# Quiet hours keep the account from waking people. Someone who followed or wrote to the account in the last minutes
# is awake: a journey step that answers that (the welcome after a follow, a step due just after a message) goes now,
# not at the end of the night. Pushes obey quiet hours whoever is awake. A message whose follow-ups have not moved
# last_interaction_at yet counts (accounts.selectors.touches_pending: one more query, only for those who look asleep).
AWAKE = dt.timedelta(minutes=10)


def _awake(row: dict[str, Any], now: dt.datetime) -> bool:
    last = row.get("last_interaction_at")
    return last is not None and now - AWAKE <= last <= now + AWAKE


def _rules(send: Send) -> frozenset[str]:
    """The rules this send obeys (a source of no table obeys every rule)."""
    return RULES.get(send.source, _CHANNEL_RULES | {OPT_OUTS, CAPS, QUIET})


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


def consent_refusals(
    *, send: Send, subscribers: QuerySet[Subscriber], now: dt.datetime | None = None, policy: SendPolicy | None = None
) -> QuerySet[Subscriber]:
    """`subscribers` (a queryset, e.g. a push's segment) annotated with `consent_refused`: whether `decide_many`
    would refuse the person with NO_CONSENT, in SQL, so that a subscription-notice push writes those skips with its
    recipients, set-based, instead of sending their rows through its pages. The same facts and the same order as
    `decide_many`: a person refused for an earlier rule (not following, paused, opted out, over their cap) is not
    refused for consent here, and keeps that rule's reason when the page decides; consent is the rule's own
    definition (content.services.notices.notice_consents_allowing)."""
    from content.services.notices import notice_consents_allowing

    now = now or timezone.now()
    policy = policy or SendPolicy.current()
    rules = _rules(send)
    refusable = send.channel == Channel.NOTICE and CONSENT in rules and not _channel_never(send, policy, now, rules)
    if not refusable:
        return subscribers.annotate(consent_refused=Value(False))
    qs = _annotated(send, policy, subscribers, now, rules)
    earlier: list[When] = []  # _person_never's rules, in its order (the window is for customer-service messages)
    if FOLLOWING in rules:
        earlier.append(When(is_following=False, then=Value(False)))
    if OPT_OUTS in rules:
        earlier += [When(pushes_paused=True, then=Value(False)), When(opted_out=True, then=Value(False))]
    if CAPS in rules:
        earlier.append(When(recent__gte=_cap(send, policy), then=Value(False)))
    if send.notice_template is not None:  # consent first: the others are looked at only for who has none
        allowing = notice_consents_allowing(template=send.notice_template).filter(subscriber_id=OuterRef("pk"))
        earlier.insert(0, When(Exists(allowing), then=Value(False)))
    return qs.annotate(consent_refused=Case(*earlier, default=Value(True), output_field=BooleanField()))


def _cap(send: Send, policy: SendPolicy) -> Any:
    """A person's frequency cap as an expression (as `_person_never` computes it): the push's cap, or the
    policy's, and the person's own when lower (their own replaces the policy's)."""
    push_cap = send.push.frequency_cap if send.push is not None else None
    if push_cap is None:
        return Coalesce(F("max_pushes_per_week"), Value(policy.frequency_cap))
    return Case(When(max_pushes_per_week__lt=push_cap, then=F("max_pushes_per_week")), default=Value(push_cap))


def _facts(
    send: Send, policy: SendPolicy, ids: list[int], now: dt.datetime, rules: frozenset[str], fields: Collection[str]
) -> dict[int, dict[str, Any]]:
    """One query: each subscriber's state, recent sends (caps), topic opt-outs and mass sends this month."""
    if not ids:
        return {}
    names = ["recent", "opted_out", "mass_month"]
    columns = [*dict.fromkeys([*TEMPLATE_FIELDS, *fields]), *names]
    qs = _annotated(send, policy, Subscriber.objects.all(), now, rules).values(*columns)
    return {row["id"]: row for row in rows_by_id(qs, field="pk", ids=ids)}


def _annotated(
    send: Send, policy: SendPolicy, qs: QuerySet[Subscriber], now: dt.datetime, rules: frozenset[str]
) -> QuerySet[Subscriber]:
    """The subscribers with their recent sends (caps), topic opt-outs and mass sends this month annotated."""
    from content.services.deliveries.rows import COUNTED

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
    return qs
