"""The named values passed between the steps of a page: claimed rows, recipients to send to, outcomes to write,
messages to retry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ...models import Delivery

D = Delivery.Status
# Deliveries that count against caps and quotas (WeChat was, or may have been, asked to deliver them).
COUNTED = (D.SENDING, D.SENT, D.DELIVERED, D.FAILED, D.UNKNOWN)
OPEN = (D.QUEUED, D.SENDING)


class Claim(NamedTuple):
    """A delivery row this task claimed (queued -> sending), and how many times it has been claimed."""

    delivery_id: int
    subscriber_id: int
    attempts: int


class Sendable(NamedTuple):
    """A claimed row that passed the caps and quotas: its recipient's fields for rendering."""

    delivery_id: int
    recipient: dict[str, Any]
    attempts: int


class DeliveryUpdate(NamedTuple):
    """A row's outcome, written with the others of its chunk in one statement (the field order is the SQL's)."""

    delivery_id: int
    status: str
    reason: str = ""
    errcode: int | None = None
    msgid: int | None = None
    sent_at: dt.datetime | None = None
    not_before: dt.datetime | None = None
    finished_at: dt.datetime | None = None


class Retry(NamedTuple):
    """A message WeChat asked to send again later, after `retry_after` seconds at least."""

    delivery_id: int
    retry_after: float
    reason: str
    attempts: int


@dataclass
class ChunkResult:
    """What sending a chunk decided: the rows' outcomes, the messages to retry, the recipients WeChat says no longer
    follow, and those WeChat says have not accepted a subscription notice."""

    updates: list[DeliveryUpdate] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # subscription notices WeChat refused: not accepted (43101)

    def extend(self, other: ChunkResult) -> None:
        self.updates += other.updates
        self.retries += other.retries
        self.gone += other.gone
        self.refused += other.refused


def skipped(delivery_id: int, reason: str, at: dt.datetime) -> DeliveryUpdate:
    return DeliveryUpdate(delivery_id, D.SKIPPED, reason, finished_at=at)
