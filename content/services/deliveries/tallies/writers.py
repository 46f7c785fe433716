"""Writers of counters that need the rows' values before the change: they lock the deliveries, read them, change
them and add the difference of their keys, in one transaction."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from ....models import Delivery, Push, PushTally
from ..rows import D
from .keys import (
    BASELINE_FOLLOWERS,
    BASELINE_UNFOLLOWS,
    CLICKERS,
    CLICKS,
    FORWARDED_CLICKS,
    TALLY_FIELDS,
    UNFOLLOW_LOOKBACK,
    rows_deltas,
    tally_add,
    tally_lock,
)


@transaction.atomic
def deliveries_transition(*, rows, changes: dict[int, dict[str, Any]]) -> int:
    """Apply `changes` {delivery id: {field: value}} to the rows of the queryset `rows` that are among them, with
    their counters, in one transaction: the rows are locked (in id order) and read, updated, and the difference of
    their keys added. Returns the rows changed."""
    tally_lock()
    locked = list(rows.filter(pk__in=list(changes)).select_for_update().order_by("pk").values_list("pk", *TALLY_FIELDS))
    if not locked:
        return 0
    before, after, objs = [], [], []
    fields: set[str] = set()
    for pk, *row in locked:
        values = dict(zip(TALLY_FIELDS, row, strict=True))
        new = {**values, **changes[pk]}
        before.append(tuple(values[f] for f in TALLY_FIELDS))
        after.append(tuple(new[f] for f in TALLY_FIELDS))
        fields |= set(changes[pk])
        objs.append(Delivery(pk=pk, **changes[pk]))
    Delivery.objects.bulk_update(objs, sorted(fields))
    tally_add(rows_deltas(before, after))
    return len(locked)


def deliveries_queued_skip(*, subscriber_id: int, reason: str, at: dt.datetime) -> int:
    """The subscriber's queued deliveries (of any push) are skipped with `reason`, with their counters."""
    rows = Delivery.objects.filter(subscriber_id=subscriber_id, status=D.QUEUED)
    change = {"status": D.SKIPPED, "reason": reason, "finished_at": at}
    return deliveries_transition(rows=rows, changes=dict.fromkeys(rows.values_list("pk", flat=True), change))


def deliveries_unfollowed(*, unfollows: Sequence[tuple[int, dt.datetime]]) -> int:
    """Unfollows (subscriber id, at): each delivery claimed in the 7 days before one of its subscriber's unfollows gets
    `unfollowed_at` (the earliest since its claim), with its counters. Returns the rows changed."""
    if not unfollows:
        return 0
    by_subscriber: dict[int, list[dt.datetime]] = {}
    for subscriber_id, at in unfollows:
        if subscriber_id and at:
            by_subscriber.setdefault(subscriber_id, []).append(at)
    if not by_subscriber:
        return 0
    from django.db.models import Q

    window = Q()
    for subscriber_id, times in by_subscriber.items():
        since = min(times) - UNFOLLOW_LOOKBACK
        window |= Q(subscriber_id=subscriber_id) & (
            Q(claimed_at__lte=max(times), claimed_at__gt=since)
            | Q(claimed_at__isnull=True, sent_at__lte=max(times), sent_at__gt=since)  # rows older than claims
        )
    candidates = Delivery.objects.filter(window).values_list(
        "pk", "subscriber_id", "claimed_at", "sent_at", "unfollowed_at"
    )
    changes: dict[int, dict[str, Any]] = {}
    for pk, subscriber_id, claimed_at, sent_at, unfollowed_at in candidates:
        since = claimed_at or sent_at
        inside = [at for at in by_subscriber[subscriber_id] if since <= at < since + UNFOLLOW_LOOKBACK]
        if inside and (unfollowed_at is None or min(inside) < unfollowed_at):
            changes[pk] = {"unfollowed_at": min(inside)}
    if not changes:
        return 0
    # Locked and read again: a page writing the row's outcome now is waited for, and its status counted.
    return deliveries_transition(rows=Delivery.objects.all(), changes=changes)


def clicks_record(*, clicks: Sequence[tuple[int, int, int, dt.datetime, bool]]) -> None:
    """Tracked-link clicks (interaction id, subscriber id, push id, at, forwarded) of pushes: `clicks` +1 each
    (`forwarded_clicks` too for a link someone forwarded), `clickers` +1 for a subscriber's first click of the push
    (the lowest interaction id of their clicks of it), and the clicker's delivery of the push gets `clicked_at`
    (their first click), which makes them a reached clicker when it was."""
    from accounts.models import Interaction

    pushes = set(Push.objects.filter(pk__in={c[2] for c in clicks}).values_list("pk", flat=True))
    clicks = [c for c in clicks if c[2] in pushes]
    if not clicks:
        return
    first: dict[tuple[int, int], int] = {}
    earlier = Interaction.objects.filter(
        kind=Interaction.Kind.LINK_CLICK,
        subscriber_id__in={c[1] for c in clicks},
        data__push_id__in=sorted(pushes),
        pk__lte=max(c[0] for c in clicks),
    ).values_list("pk", "subscriber_id", "data__push_id")
    for pk, subscriber_id, push_id in earlier:
        key = (subscriber_id, int(push_id))
        first[key] = min(pk, first.get(key, pk))
    deltas: Counter[tuple[int, str]] = Counter()
    for interaction_id, subscriber_id, push_id, _at, forwarded in clicks:
        deltas[(push_id, CLICKS)] += 1
        if forwarded:
            deltas[(push_id, FORWARDED_CLICKS)] += 1
        if first.get((subscriber_id, push_id)) == interaction_id:
            deltas[(push_id, CLICKERS)] += 1
    tally_add(deltas)
    # The clicker's delivery of the push (if they were a recipient): its first click, for "reached clickers".
    at_by_pair: dict[tuple[int, int], dt.datetime] = {}
    for _pk, subscriber_id, push_id, at, _forwarded in clicks:
        pair = (push_id, subscriber_id)
        at_by_pair[pair] = min(at, at_by_pair.get(pair, at))
    from django.db.models import Q

    match = Q()
    for push_id, subscriber_id in at_by_pair:
        match |= Q(push_id=push_id, subscriber_id=subscriber_id)
    changes = {
        pk: {"clicked_at": at_by_pair[(push_id, subscriber_id)]}
        for pk, push_id, subscriber_id, clicked_at in Delivery.objects.filter(match).values_list(
            "pk", "push_id", "subscriber_id", "clicked_at"
        )
        if clicked_at is None or at_by_pair[(push_id, subscriber_id)] < clicked_at
    }
    if changes:
        deliveries_transition(rows=Delivery.objects.all(), changes=changes)


def baseline_record(*, push: Push) -> None:
    """The account's churn before the push started (unfollows in the 30 days before, followers then), once."""
    from ....selectors import baseline_counts

    if push.started_at is None or PushTally.objects.filter(push_id=push.pk, key=BASELINE_FOLLOWERS).exists():
        return
    unfollows, followers = baseline_counts(before=push.started_at)
    tally_add({(push.pk, BASELINE_UNFOLLOWS): unfollows, (push.pk, BASELINE_FOLLOWERS): followers or 0})
    if not followers:  # a zero is no row: mark the baseline as taken
        PushTally.objects.create(push_id=push.pk, key=BASELINE_FOLLOWERS, n=0)
