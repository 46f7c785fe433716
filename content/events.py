"""The content app's part in what happens on each message and event (the table is wechat_crm.wechat.dispatch):
WeChat's reports on our sends update the deliveries and mass batches, in Celery after the callback commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .services import deliveries


def delivery_job_finish(interactions: Sequence[Any]) -> None:
    """TEMPLATESENDJOBFINISH: the delivery with that msgid becomes delivered or failed (two statements for the
    batch)."""
    deliveries.deliveries_job_finish(interactions)


def mass_job_finish(interactions: Sequence[Any]) -> None:
    """MASSSENDJOBFINISH: the mass batch's totals (one statement per report: a few per mass send)."""
    for interaction in interactions:
        deliveries.mass_job_finish(interaction)
