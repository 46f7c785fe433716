"""The preferences page's reads and changes: what a subscriber receives (topics, how often, paused or not, their
consent to subscription notices), changed by the person themselves, each change confirmed in the chat.

The page (conversations.views) knows the person through web authorisation (accounts.webauth), never through an
openid in its URL. A change goes through the same services as the API and the chat keywords
(accounts.subscribers.subscriber_update; content.services.notices.notice_consents_record for a withdrawal), then a
confirmation is offered to the send policy (conversations.policy, source "confirmation": WeChat's channel rules
only, so a confirmation of "pause pushes" still reaches the person). The policy answers:
  - now: a customer-service text, inside WeChat's window (the person wrote to us in the last 48 hours, or followed,
    scanned or clicked a menu item in the last minute; opening the page from a VIEW menu button opens nothing);
  - never (outside the window, not following): the confirmation is recorded as skipped with the policy's reason,
    and the page says so. A template message is not used: confirmations are not worth a template's daily quota,
    and only service-purpose templates may go out unprompted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.models import Subscriber
from accounts.subscribers import UNSET, subscriber_update
from content.models import Topic

from . import policy
from .models import OutboundMessage

# The choices of the page's "how often" field: None is the account's default.
FREQUENCIES: tuple[int | None, ...] = (None, 1, 2, 3, 5, 7)


@dataclass(frozen=True)
class NoticeChoice:
    template_id: str
    title: str


@dataclass(frozen=True)
class Preferences:
    """What the page shows: every topic with whether the person receives it, the weekly cap (None: the account's
    default), whether pushes are paused, and the notice templates the person has accepted (they may withdraw)."""

    subscriber: Subscriber
    topics: list[tuple[Topic, bool]]
    max_pushes_per_week: int | None
    pushes_paused: bool
    notices: list[NoticeChoice] = field(default_factory=list)


def subscriber_follows(*, subscriber_id: int) -> bool:
    """Whether the person still exists and follows (the page serves followers only)."""
    return Subscriber.objects.filter(pk=subscriber_id, is_following=True).exists()


def preferences_for(*, subscriber_id: int) -> Preferences:
    """The person's preferences as the page shows them (four queries)."""
    from content.models import NoticeConsent, NoticeTemplate

    subscriber = Subscriber.objects.get(pk=subscriber_id)
    opted_out = set(subscriber.topics_opted_out.values_list("pk", flat=True))
    accepted = list(
        NoticeConsent.objects.filter(subscriber_id=subscriber_id, accepted=True).values_list("template_id", flat=True)
    )
    titles = dict(NoticeTemplate.objects.filter(template_id__in=accepted).values_list("template_id", "title"))
    return Preferences(
        subscriber=subscriber,
        topics=[(topic, topic.pk not in opted_out) for topic in Topic.objects.order_by("name")],
        max_pushes_per_week=subscriber.max_pushes_per_week,
        pushes_paused=subscriber.pushes_paused,
        notices=[NoticeChoice(t, titles.get(t, t)) for t in sorted(accepted, key=lambda t: titles.get(t, t))],
    )


@dataclass
class Changed:
    """What a change did: the lines of the confirmation ([] when nothing changed), the confirmation's message row
    (queued or skipped; None when nothing changed) and the policy's decision about it."""

    lines: list[str]
    message: OutboundMessage | None = None
    decision: policy.Decision | None = None

    @property
    def confirmed_in_chat(self) -> bool:
        return self.message is not None and self.message.status != OutboundMessage.Status.SKIPPED


@transaction.atomic
def preferences_change(
    *,
    subscriber_id: int,
    topics_received: Collection[int],
    max_pushes_per_week: int | None,
    pushes_paused: bool,
    notices_withdrawn: Collection[str] = (),
    now: dt.datetime | None = None,
) -> Changed:
    """Apply the page's form for the person and confirm it in the chat. Topics not received become opted out (and
    leave the preferred ones); `notices_withdrawn` are notice templates whose consent the person withdraws."""
    now = now or timezone.now()
    before = preferences_for(subscriber_id=subscriber_id)
    all_topics = {topic.pk: topic for topic, _received in before.topics}
    received = {pk for pk in topics_received if pk in all_topics}
    was_received = {topic.pk for topic, ok in before.topics if ok}
    lines: list[str] = []
    if pushes_paused != before.pushes_paused:
        lines.append(
            _("Pushes paused: you will receive none until you resume them.")
            if pushes_paused
            else _("Pushes resumed: you will receive our pushes again.")
        )
    if max_pushes_per_week != before.max_pushes_per_week:
        lines.append(
            _("How often: the account's usual rhythm.")
            if max_pushes_per_week is None
            else ngettext(
                "How often: at most %(n)d push a week.", "How often: at most %(n)d pushes a week.", max_pushes_per_week
            )
            % {"n": max_pushes_per_week}
        )
    if received != was_received:
        names = "、".join(all_topics[pk].name for pk in sorted(received, key=lambda pk: all_topics[pk].name))
        lines.append(_("Topics you receive: %(topics)s.") % {"topics": names} if names else _("You receive no topic."))
    withdrawn = [n for n in before.notices if n.template_id in set(notices_withdrawn)]
    if withdrawn:
        lines.append(
            _("Consent withdrawn for these notices: %(titles)s.") % {"titles": "、".join(n.title for n in withdrawn)}
        )
    if not lines:
        return Changed(lines=[])
    subscriber = before.subscriber
    subscriber_update(
        subscriber=subscriber,
        topics_opted_out=[pk for pk in all_topics if pk not in received],
        topics_preferred=list(subscriber.topics_preferred.filter(pk__in=received).values_list("pk", flat=True)),
        max_pushes_per_week=max_pushes_per_week if max_pushes_per_week != before.max_pushes_per_week else UNSET,
        pushes_paused=pushes_paused,
    )
    if withdrawn:
        from content.models import NoticeConsentChange
        from content.services.notices import ConsentDecision, notice_consents_record

        notice_consents_record(
            decisions=[ConsentDecision(subscriber_id=subscriber.pk, template_id=n.template_id,
                                       decision=NoticeConsentChange.Decision.WITHDRAW, at=now) for n in withdrawn]
        )  # fmt: skip
    text = "\n".join([_("Your preferences are saved."), *lines])
    message, decision = confirmation_send(subscriber=subscriber, text=text, now=now)
    return Changed(lines=lines, message=message, decision=decision)


def confirmation_send(
    *, subscriber: Subscriber, text: str, now: dt.datetime
) -> tuple[OutboundMessage | None, policy.Decision]:
    """A confirmation of the person's own change, offered to the send policy as a customer-service text: queued
    when the policy says now (the worker asks it again before sending), recorded as skipped with its reason
    otherwise."""
    from .services import _create, _record_skipped, custom_text_payload

    send = policy.Send(channel=policy.Channel.CUSTOM, source=policy.Source.CONFIRMATION)
    decision = policy.decide(send=send, subscriber=subscriber, now=now)
    fields: dict[str, Any] = {"subscriber": subscriber, "kind": OutboundMessage.Kind.CUSTOM,
                              "source": OutboundMessage.Source.CONFIRMATION, "text": text}  # fmt: skip
    if decision.allowed:
        return _create(**fields, payload=custom_text_payload(subscriber, text), created_at=now), decision
    return _record_skipped(**fields, reason=decision.reason, dedupe_key=None, now=now), decision
