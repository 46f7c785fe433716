"""A push's progress: its counts by delivery status, and its end once no delivery is open."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count

from ...models import Delivery, Push
from . import tallies
from .rows import OPEN, D


def push_finish_if_done(*, push_id: int) -> bool:
    """sending -> sent, or partially_failed when some deliveries ended in error or unknown. Once (state guard)."""
    from ..pushes import push_set_status

    if Delivery.objects.filter(push_id=push_id, status__in=OPEN).exists():
        return False
    with transaction.atomic():
        push = Push.objects.select_for_update().filter(pk=push_id, status=Push.Status.SENDING).first()
        if push is None or push.resolved_at is None:
            return False
        if Delivery.objects.filter(push_id=push_id, status__in=OPEN).exists():
            return False
        bad = Delivery.objects.filter(push_id=push_id, status__in=(D.ERROR, D.UNKNOWN)).exists()
        push_set_status(push, to=Push.Status.PARTIALLY_FAILED if bad else Push.Status.SENT)
    tallies.tallies_compact(push_id=push_id)  # its counters, one row each (job-finish reports may still add some)
    return True


def push_progress(*, push: Push) -> dict[str, Any]:
    """Counts by delivery status, for the live progress bar: the push's counters (tallies.py), and the rows being
    sent right now (a few pages' worth, through the (push, status) index); queued is the rest."""
    return pushes_progress(pushes=[push])[push.pk]


def pushes_progress(*, pushes: list[Push]) -> dict[int, dict[str, Any]]:
    """push_progress of several pushes in two queries."""
    ids = [p.pk for p in pushes]
    counters = tallies.push_tallies(push_ids=ids)
    sending = dict(
        Delivery.objects.filter(push_id__in=ids, status=D.SENDING)
        .order_by()
        .values_list("push_id")
        .annotate(n=Count("*"))
    )
    out = {}
    for push in pushes:
        counts = tallies.by_status(counters[push.pk])
        total = counters[push.pk][tallies.RECIPIENTS]
        open_ = counts.pop("open")
        counts[D.SENDING] = min(open_, sending.get(push.pk, 0))
        counts[D.QUEUED] = open_ - counts[D.SENDING]
        done = total - open_
        out[push.pk] = {
            "push": push.pk,
            "status": push.status,
            "status_display": push.get_status_display(),
            "recipients": total,
            "done": done,
            "percent": round(100 * done / total, 1) if total else (100.0 if push.status in ("sent",) else 0.0),
            "counts": {s: counts.get(s, 0) for s in D.values},
        }
    return out
