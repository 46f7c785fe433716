"""Changes of state of conversations: WeChat's customer-service window, outbound messages (operator replies,
template messages, auto-reply templates), the inbox, and the lead score."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, F, IntegerField, Q, Value, When
from django.db.models.functions import Coalesce, Least
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Subscriber
from wechat_crm.exceptions import ApplicationError
from wechat_crm.wechat import messages
from wechat_crm.wechat.messages import Payload

from . import policy
from .errors import OutsideWindow, SendRefused
from .models import Conversation, OutboundMessage

logger = logging.getLogger(__name__)

S = OutboundMessage.Status
# WeChat's customer-service window is computed in ONE place: conversations.policy (the names stay importable here).
MESSAGE_WINDOW, MESSAGE_LIMIT = policy.MESSAGE_WINDOW, policy.MESSAGE_LIMIT
EVENT_WINDOW, EVENT_LIMIT = policy.EVENT_WINDOW, policy.EVENT_LIMIT
Window = policy.Window


def cs_window(subscriber: Subscriber, now: dt.datetime | None = None) -> Window:
    """Whether WeChat accepts a customer-service message to the subscriber now, how many more, and why not
    (conversations.policy.window)."""
    return policy.window(subscriber=subscriber, now=now)


# --- outbound messages ----------------------------------------------------------------------------------------------


def _enqueue_send() -> None:
    """After commit, a page task sends it (one task for all the messages the transaction queued)."""
    from .outbound import outbound_page_enqueue

    outbound_page_enqueue()


def _create(**fields: Any) -> OutboundMessage | None:
    """Insert the row (None when its dedupe key exists already) and send it after commit."""
    try:
        with transaction.atomic():
            message = OutboundMessage.objects.create(**fields)
    except IntegrityError:
        return None
    _enqueue_send()
    return message


def custom_text_payload(subscriber: Subscriber, text: str) -> Payload:
    """A customer-service text, as the outbound row stores it until it is sent."""
    return messages.custom_text(openid=subscriber.openid, text=text)


def custom_news_payload(subscriber: Subscriber, articles: list[Any], *, description: str = "") -> Payload:
    """A customer-service card of the first article (WeChat shows one) with its tracked link; `description`
    replaces the article's digest when given."""
    from content.services import link_track

    cards = [
        messages.NewsArticle(
            title=article.title,
            description=description or article.digest,
            url=link_track(article.public_url(), subscriber_id=subscriber.pk, content_id=article.pk),
            picurl=article.cover_url(),
        )
        for article in articles[: messages.NEWS_MAX_ARTICLES]
    ]
    return messages.custom_news(openid=subscriber.openid, articles=cards)


def template_payload(subscriber: Subscriber, template: Any, *, article: Any = None) -> Payload:
    """A template message rendered for the subscriber, linking to `article` (tracked) or to the template's link."""
    from content.services import link_track, template_context, template_render, template_url

    context = template_context(article=article) if article is not None else None
    if article is not None:
        url = link_track(article.public_url(), subscriber_id=subscriber.pk, content_id=article.pk)
    else:
        url = template_url(template, subscriber_id=subscriber.pk)
    return messages.template_message(
        openid=subscriber.openid,
        template_id=template.wechat_template_id,
        data=template_render(template, subscriber=subscriber, context=context),
        url=url,
        miniprogram=messages.MiniProgram(appid=template.miniprogram_appid, pagepath=template.miniprogram_pagepath),
    )


def _labels(reason: str) -> str:
    from content.reasons import reason_label

    return reason_label(reason)


@transaction.atomic
def operator_reply(*, subscriber: Subscriber, text: str, by: Any = None, now: dt.datetime | None = None):
    """An operator's customer-service reply, sent by Celery. OutsideWindow (with the reason) when WeChat would
    refuse it (the send policy's window). The conversation counts as answered."""
    now = now or timezone.now()
    text = (text or "").strip()
    if not text:
        raise OutsideWindow(_("Write a reply first."))
    Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()  # one reply at a time per subscriber
    send = policy.Send(channel=policy.Channel.CUSTOM, source=policy.Source.OPERATOR)
    decision = policy.decide(send=send, subscriber=subscriber, now=now)
    if not decision.allowed:
        window = cs_window(subscriber, now)
        message = window.reason if decision.reason == window.code else _labels(decision.reason)
        raise OutsideWindow(message, extra={"remaining": 0, "reason": decision.reason})
    message = _create(
        subscriber=subscriber, kind=OutboundMessage.Kind.CUSTOM, source=OutboundMessage.Source.OPERATOR, text=text,
        payload=custom_text_payload(subscriber, text), created_by=by if getattr(by, "pk", None) else None,
        created_at=now,
    )  # fmt: skip
    conversation_answered(subscriber=subscriber, at=now)
    return message


def _policy_source(source: str) -> str:
    return {OutboundMessage.Source.OPERATOR: policy.Source.OPERATOR, OutboundMessage.Source.JOURNEY:
            policy.Source.JOURNEY, OutboundMessage.Source.CONFIRMATION: policy.Source.CONFIRMATION,
            }.get(source, policy.Source.AUTO_REPLY)  # fmt: skip


@transaction.atomic
def template_send(
    *,
    subscriber: Subscriber,
    template: Any,
    source: str = OutboundMessage.Source.OPERATOR,
    by: Any = None,
    article: Any = None,
    dedupe_key: str | None = None,
    now: dt.datetime | None = None,
    decided: bool = False,
) -> OutboundMessage | None:
    """A template message to one subscriber, sent by Celery. None when dedupe_key was used.

    The send policy decides first (unless the caller did: `decided`): an operator gets SendRefused with the reason
    (a marketing template, the day's quota); any other source gets the row recorded as skipped with its reason."""
    now = now or timezone.now()
    if not decided:
        send = policy.Send(channel=policy.Channel.TEMPLATE, source=_policy_source(source), template=template)
        decision = policy.decide(send=send, subscriber=subscriber, now=now)
        if decision.verdict == policy.Verdict.NEVER:
            if source == OutboundMessage.Source.OPERATOR:
                text = _("The send policy refuses this message: %(reason)s.") % {"reason": _labels(decision.reason)}
                raise SendRefused(text, extra={"reason": decision.reason})
            return _record_skipped(subscriber=subscriber, kind=OutboundMessage.Kind.TEMPLATE, source=source,
                                   text=template.title, template=template, reason=decision.reason,
                                   dedupe_key=dedupe_key, now=now)  # fmt: skip
    message = _create(
        subscriber=subscriber, kind=OutboundMessage.Kind.TEMPLATE, source=source, text=template.title,
        payload=template_payload(subscriber, template, article=article), dedupe_key=dedupe_key, template=template,
        created_by=by if getattr(by, "pk", None) else None, created_at=now,
    )  # fmt: skip
    if source == OutboundMessage.Source.OPERATOR:
        conversation_answered(subscriber=subscriber, at=now)
    return message


def _record_skipped(
    *, subscriber: Subscriber, kind: str, source: str, text: str, reason: str, dedupe_key: str | None,
    now: dt.datetime, template: Any = None,
) -> OutboundMessage | None:  # fmt: skip
    """A message the send policy kept back, recorded with its reason (never sent)."""
    try:
        with transaction.atomic():
            return OutboundMessage.objects.create(
                subscriber=subscriber, kind=kind, source=source, text=text, status=S.SKIPPED, skip_reason=reason,
                template=template, dedupe_key=dedupe_key, created_at=now,
            )  # fmt: skip
    except IntegrityError:
        return None


class TemplateSend(NamedTuple):
    subscriber: Subscriber
    template: Any
    dedupe_key: str
    at: dt.datetime


def templates_send(*, sends: Sequence[TemplateSend], source: str) -> int:
    """Template messages to several subscribers, sent by Celery: the send policy decides for each template's
    recipients at once; one INSERT for the batch (a dedupe key used already is skipped; a message the policy keeps
    back is recorded as skipped with its reason) and one query for the rows to send. Returns how many are queued."""
    if not sends:
        return 0
    by_template: dict[int, list[TemplateSend]] = {}
    for s in sends:
        by_template.setdefault(s.template.pk, []).append(s)
    refused: dict[str, str] = {}
    for group in by_template.values():
        send = policy.Send(channel=policy.Channel.TEMPLATE, source=_policy_source(source), template=group[0].template)
        decisions = policy.decide_many(send=send, subscriber_ids=[s.subscriber.pk for s in group],
                                       now=max(s.at for s in group))  # fmt: skip
        for s in group:
            if decisions[s.subscriber.pk].verdict == policy.Verdict.NEVER:
                refused[s.dedupe_key] = decisions[s.subscriber.pk].reason
    OutboundMessage.objects.bulk_create(
        [OutboundMessage(subscriber=s.subscriber, kind=OutboundMessage.Kind.TEMPLATE, source=source,
                         text=s.template.title, template=s.template, dedupe_key=s.dedupe_key, created_at=s.at,
                         **({"status": S.SKIPPED, "skip_reason": refused[s.dedupe_key]} if s.dedupe_key in refused
                            else {"payload": template_payload(s.subscriber, s.template)}))
         for s in sends],
        ignore_conflicts=True,
    )  # fmt: skip
    queued = list(
        OutboundMessage.objects.filter(dedupe_key__in=[s.dedupe_key for s in sends], status=S.QUEUED).values_list(
            "pk", flat=True
        )
    )
    if queued:
        _enqueue_send()
    return len(queued)


def custom_send(
    *, subscriber: Subscriber, payload: dict[str, Any], text: str, source: str, dedupe_key: str | None = None,
    now: dt.datetime | None = None,
) -> OutboundMessage | None:  # fmt: skip
    """A customer-service message from the product (journeys); the caller asked the send policy (journey_channels).
    The worker asks it again before sending."""
    return _create(
        subscriber=subscriber, kind=OutboundMessage.Kind.CUSTOM, source=source, text=text, payload=payload,
        dedupe_key=dedupe_key, created_at=now or timezone.now(),
    )  # fmt: skip


def notice_payload(subscriber: Subscriber, template: Any, *, values: dict[str, str], article: Any = None) -> Payload:
    """A subscription notice rendered for the subscriber, opening `article` through its tracked link."""
    page = ""
    if article is not None:
        from content.services import link_track

        page = link_track(article.public_url(), subscriber_id=subscriber.pk, content_id=article.pk)
    return messages.subscription_notice(openid=subscriber.openid, template_id=template.template_id, data=values,
                                        page=page)  # fmt: skip


def notice_send(
    *, subscriber: Subscriber, template: Any, values: dict[str, str], article: Any = None, source: str,
    dedupe_key: str | None = None, now: dt.datetime | None = None,
) -> OutboundMessage | None:  # fmt: skip
    """A subscription notice to one person, sent by Celery (the caller asked the send policy, which checked their
    consent; the worker asks it again). None when dedupe_key was used."""
    payload = notice_payload(subscriber, template, values=values, article=article)
    return _create(
        subscriber=subscriber, kind=OutboundMessage.Kind.NOTICE, source=source, text=template.title,
        payload=payload, dedupe_key=dedupe_key, notice_template=template, created_at=now or timezone.now(),
    )  # fmt: skip


class OutboundResult(NamedTuple):
    """The message's status after a send ("" when another worker had claimed it), and when a message WeChat asked
    to retry later (back to queued) should be tried again (seconds); `defer_until`: the send policy said LATER."""

    status: str
    retry_after: float | None = None
    defer_until: dt.datetime | None = None


def outbound_send(*, message_id: int, client=None) -> OutboundResult:
    """Send one queued message (a page of one: conversations.outbound). Safe to run twice: the row is claimed
    (queued -> sending) first. A message WeChat asks to retry later goes back to queued."""
    from .outbound import outbound_send_page

    page = outbound_send_page(ids=[message_id], client=client, threads=1)
    status = page.statuses.get(message_id, "")
    if status == S.QUEUED and message_id not in page.retry_after:  # the send policy said LATER
        return OutboundResult(S.QUEUED, defer_until=page.defer_until)
    return OutboundResult(status, page.retry_after.get(message_id))


def outbound_resend_stuck(*, now: dt.datetime | None = None, older_than: dt.timedelta = dt.timedelta(minutes=2)):
    """Queued messages whose enqueue was lost are queued for sending again. A send a dead worker left "sending" for
    10 minutes becomes unknown, not resent: WeChat may already have delivered it, and a second copy is worse."""
    now = now or timezone.now()
    OutboundMessage.objects.filter(status=S.SENDING, claimed_at__lt=now - dt.timedelta(minutes=10)).update(
        status=S.UNKNOWN,
        reason=_("The worker stopped while sending; WeChat may have delivered it, so it is not sent again"),
    )
    due = Q(not_before__isnull=True, created_at__lt=now - older_than) | Q(not_before__lte=now)
    waiting = len(OutboundMessage.objects.filter(due, status=S.QUEUED).values_list("pk", flat=True)[:1000])
    if waiting:  # one page task sends them all (it hands over to another past its limit)
        from .outbound import outbound_page_enqueue

        outbound_page_enqueue()
    return waiting


# --- the inbox ------------------------------------------------------------------------------------------------------


def conversation_answered(*, subscriber: Subscriber, at: dt.datetime) -> None:
    Conversation.objects.update_or_create(
        subscriber=subscriber, defaults={"unanswered": 0, "last_outbound_at": at, "waiting_since": None}
    )


def conversation_assign(*, conversation: Conversation, to: Any) -> Conversation:
    """Give the conversation to an operator (a staff user), or to nobody (`to=None`)."""
    if to is not None and not (to.is_active and to.is_staff):
        raise ApplicationError(_("Only an active staff user can be given a conversation."))
    conversation.assigned_to = to
    conversation.save(update_fields=["assigned_to"])
    return conversation


class Inbound(NamedTuple):
    unanswered: int  # messages of the batch no auto-reply answered
    last_at: dt.datetime  # the latest message of the batch
    first_unanswered_at: dt.datetime | None = None  # the earliest of the unanswered ones


def conversations_record_inbound(*, inbound: Mapping[int, Inbound]) -> None:
    """Messages from subscribers ({subscriber id: their messages of the batch}): the unanswered ones wait in the
    inbox (first in it), waiting since the earliest unanswered message. On PostgreSQL one statement for the batch
    (an upsert, in subscriber order); elsewhere two."""
    if not inbound:
        return
    if connection.vendor == "postgresql":
        ids = sorted(inbound)
        params = [ids, [inbound[pk].unanswered for pk in ids], [inbound[pk].last_at for pk in ids],
                  [inbound[pk].first_unanswered_at for pk in ids]]  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute(_RECORD_INBOUND_SQL, params)
        return
    Conversation.objects.bulk_create(
        [Conversation(subscriber_id=pk, unanswered=0) for pk in inbound], ignore_conflicts=True
    )
    Conversation.objects.filter(subscriber_id__in=inbound).update(
        unanswered=F("unanswered")
        + Case(*[When(subscriber_id=pk, then=Value(m.unanswered)) for pk, m in inbound.items()],
               output_field=IntegerField()),
        last_inbound_at=Case(*[When(subscriber_id=pk, then=Value(m.last_at)) for pk, m in inbound.items()],
                             output_field=DateTimeField()),
        waiting_since=Case(*[When(subscriber_id=pk,
                                  then=Least(Coalesce("waiting_since", Value(m.first_unanswered_at)),
                                             Value(m.first_unanswered_at)))
                             for pk, m in inbound.items() if m.first_unanswered_at is not None],
                           default=F("waiting_since"), output_field=DateTimeField()),
    )  # fmt: skip


# The same as the portable path's two statements: a new conversation starts from the batch's figures; an existing one
# adds the unanswered messages and keeps the earlier of the two waiting times (LEAST ignores NULL).
_RECORD_INBOUND_SQL = """
    INSERT INTO conversations_conversation AS c
        (subscriber_id, unanswered, last_inbound_at, last_outbound_at, waiting_since, assigned_to_id)
    SELECT v.subscriber_id, v.unanswered, v.last_at, NULL, v.first_unanswered_at, NULL
    FROM unnest(%s::bigint[], %s::integer[], %s::timestamptz[], %s::timestamptz[])
        AS v(subscriber_id, unanswered, last_at, first_unanswered_at)
    ORDER BY v.subscriber_id
    ON CONFLICT (subscriber_id) DO UPDATE
    SET unanswered = c.unanswered + EXCLUDED.unanswered, last_inbound_at = EXCLUDED.last_inbound_at,
        waiting_since = LEAST(c.waiting_since, EXCLUDED.waiting_since)
"""
