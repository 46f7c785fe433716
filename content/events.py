"""The content app's part in what happens on each message and event (the table is wechat_crm.wechat.dispatch):
WeChat's reports on our sends update the deliveries and mass batches, people's decisions about subscription notices
become their consent, and clicks and unfollows count in the pushes' counters, in Celery after the callback (or the
redirect) commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wechat_crm.wechat.inbound import notice_items

from .services import deliveries, notices
from .services.deliveries import tallies


def delivery_job_finish(interactions: Sequence[Any]) -> None:
    """TEMPLATESENDJOBFINISH: the delivery with that msgid becomes delivered or failed (two statements for the
    batch)."""
    deliveries.deliveries_job_finish(interactions)


def mass_job_finish(interactions: Sequence[Any]) -> None:
    """MASSSENDJOBFINISH: the mass batch's totals (one statement per report: a few per mass send)."""
    for interaction in interactions:
        deliveries.mass_job_finish(interaction)


def notice_consents(interactions: Sequence[Any]) -> None:
    """subscribe_msg_popup_event (accept / reject per template) and subscribe_msg_change_event (a later rejection):
    each item becomes a decision in the person's consent history, and moves their current consent."""
    from accounts.kinds import InteractionKind as K

    Decision = notices.NoticeConsentChange.Decision
    decisions = []
    for interaction in interactions:
        if interaction.subscriber_id is None:
            continue
        for item in notice_items(interaction.kind, interaction.data or {}):
            if item.status == "accept" and interaction.kind == K.SUBSCRIBE_MSG_POPUP_EVENT:
                decision = Decision.ACCEPT
            elif item.status == "reject":
                decision = Decision.REJECT if interaction.kind == K.SUBSCRIBE_MSG_POPUP_EVENT else Decision.WITHDRAW
            else:
                continue
            decisions.append(
                notices.ConsentDecision(
                    subscriber_id=interaction.subscriber_id, template_id=item.template_id, decision=decision,
                    at=interaction.created_at, popup_scene=item.popup_scene, interaction_id=interaction.pk,
                )
            )  # fmt: skip
    notices.notice_consents_record(decisions=decisions)


def push_clicks_count(interactions: Sequence[Any]) -> None:
    """link_click of a push: the push's click counter, and its unique clickers' (one statement or two a batch)."""
    clicks = []
    for interaction in interactions:
        push_id = (interaction.data or {}).get("push_id")
        if interaction.subscriber_id and isinstance(push_id, int):
            forwarded = "shared_by" in (interaction.data or {})  # opened by someone the link was forwarded to
            clicks.append((interaction.pk, interaction.subscriber_id, push_id, interaction.created_at, forwarded))
    if clicks:
        tallies.clicks_record(clicks=clicks)


def push_unfollows_count(interactions: Sequence[Any]) -> None:
    """unsubscribe: the deliveries the subscriber got in the days before it count the unfollow (a few statements a
    batch)."""
    tallies.deliveries_unfollowed(
        unfollows=[(i.subscriber_id, i.created_at) for i in interactions if i.subscriber_id and i.created_at]
    )
