"""The content app's part in what happens on each message and event (the table is wechat_crm.wechat.dispatch):
WeChat's reports on our sends update the deliveries and mass batches, and clicks and unfollows the pushes' counters,
in Celery after the callback (or the redirect) commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .services import deliveries
from .services.deliveries import tallies


def delivery_job_finish(interactions: Sequence[Any]) -> None:
    """TEMPLATESENDJOBFINISH: the delivery with that msgid becomes delivered or failed (two statements for the
    batch)."""
    deliveries.deliveries_job_finish(interactions)


def mass_job_finish(interactions: Sequence[Any]) -> None:
    """MASSSENDJOBFINISH: the mass batch's totals (one statement per report: a few per mass send)."""
    for interaction in interactions:
        deliveries.mass_job_finish(interaction)


def push_clicks_count(interactions: Sequence[Any]) -> None:
    """link_click of a push: the push's click counter, and its unique clickers' (one statement or two a batch)."""
    clicks = []
    for interaction in interactions:
        push_id = (interaction.data or {}).get("push_id")
        if interaction.subscriber_id and isinstance(push_id, int):
            clicks.append((interaction.pk, interaction.subscriber_id, push_id))
    if clicks:
        tallies.clicks_record(clicks=clicks)


def push_unfollows_count(interactions: Sequence[Any]) -> None:
    """unsubscribe: the deliveries the subscriber got in the days before it count the unfollow (a few statements a
    batch)."""
    tallies.deliveries_unfollowed(
        unfollows=[(i.subscriber_id, i.created_at) for i in interactions if i.subscriber_id and i.created_at]
    )
