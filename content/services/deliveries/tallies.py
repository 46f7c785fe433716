"""A push's counters, kept as it goes: recipients, deliveries by final status, skips by reason, reached, unfollows
within 24 and 72 hours of the message, clicks and unique clickers. The push report, its progress bar and the
dashboard read them (a few rows) instead of counting a million deliveries and scanning the clicks' JSON.

Every change a counter reflects adds a content.PushTally row in the same statement or transaction as the change
itself, so each is counted exactly once:
  - a delivery's status (outcomes.updates_write, the page's cancellation, push_cancel, the stalled-send recovery,
    WeChat's job-finish reports, a subscriber's erasure): the row's keys before the change are subtracted and its
    keys after it added (`row_keys`); open statuses (queued, sending) count nothing, so the writes of a page cost
    nothing more than their own statement;
  - the recipients, when push_resolve writes the deliveries;
  - a click (the link_click follow-up, exactly once with the batch) and its clicker, when it is the subscriber's
    first click of the push (the lowest interaction id: the same whatever order batches run in); the clicker's
    delivery gets `clicked_at` (a reached clicker while the delivery counts as reached);
  - an unfollow (the unsubscribe follow-up): the subscriber's deliveries claimed in the 7 days before it get
    `unfollowed_at` (the first unfollow since the claim), and their keys change with it.

Rows are only inserted (no hot row that every worker of a push waits for); `tallies_compact` folds a push's rows into
one per counter (the beat, and a push that finishes). `tallies_rebuild` recounts from the rows themselves: the
definition the counters keep, and the backfill (`manage.py push_tallies_rebuild`).

"Unfollowed within 24 h" is: the message was sent or delivered, and the subscriber's first unfollow since the message
was claimed for sending (since it was sent, for rows written before claims were) is at or after `sent_at` and before
`sent_at` + 24 h.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from ...models import Delivery, Push, PushTally
from .rows import OPEN, D

RECIPIENTS = "recipients"
REACHED = "reached"
CLICKS = "clicks"
CLICKERS = "clickers"
FORWARDED_CLICKS = "forwarded_clicks"
REACHED_CLICKERS = "reached_clickers"
BASELINE_UNFOLLOWS = "baseline_unfollows"
BASELINE_FOLLOWERS = "baseline_followers"
STATUS = "status:"
SKIPPED = "skipped:"
UNFOLLOW_WINDOWS: tuple[tuple[str, dt.timedelta], ...] = (
    ("unfollows_24h", dt.timedelta(hours=24)),
    ("unfollows_72h", dt.timedelta(hours=72)),
)
UNFOLLOW_LOOKBACK = dt.timedelta(days=7)  # an unfollow stamps the deliveries claimed in the 7 days before it
REACHED_STATUSES = (D.SENT, D.DELIVERED)
COMPACT_ABOVE = 64  # the beat folds a push's rows once it has more than this many


def row_keys(
    status: str,
    reason: str,
    sent_at: dt.datetime | None,
    unfollowed_at: dt.datetime | None,
    clicked_at: dt.datetime | None = None,
) -> list[str]:
    """The counters one delivery row adds 1 to."""
    if status in OPEN:
        return []
    keys = [STATUS + status]
    if status == D.SKIPPED:
        keys.append(SKIPPED + (reason or ""))
    if status in REACHED_STATUSES and sent_at is not None:
        keys.append(REACHED)
        if clicked_at is not None:
            keys.append(REACHED_CLICKERS)
        if unfollowed_at is not None and unfollowed_at >= sent_at:
            keys += [key for key, window in UNFOLLOW_WINDOWS if unfollowed_at < sent_at + window]
    return keys


def row_keys_sql(alias: str) -> str:
    """`row_keys` in SQL, as a LATERAL list of (key) over the columns of `alias` (PostgreSQL)."""
    r = alias
    reached = f"{r}.status IN ('{D.SENT}', '{D.DELIVERED}') AND {r}.sent_at IS NOT NULL"
    left = f"{reached} AND {r}.unfollowed_at >= {r}.sent_at"
    windows = ", ".join(
        f"(CASE WHEN {left} AND {r}.unfollowed_at < {r}.sent_at + interval '{int(w.total_seconds())} seconds' "
        f"THEN '{key}' END)"
        for key, w in UNFOLLOW_WINDOWS
    )
    return (
        f"(VALUES (CASE WHEN {r}.status NOT IN ('{D.QUEUED}', '{D.SENDING}') THEN '{STATUS}' || {r}.status END), "
        f"(CASE WHEN {r}.status = '{D.SKIPPED}' THEN '{SKIPPED}' || {r}.reason END), "
        f"(CASE WHEN {reached} THEN '{REACHED}' END), "
        f"(CASE WHEN {reached} AND {r}.clicked_at IS NOT NULL THEN '{REACHED_CLICKERS}' END), {windows})"
    )


def tally_add(deltas: Counter[tuple[int, str]] | dict[tuple[int, str], int]) -> None:
    """Insert the non-zero additions {(push_id, key): n} (one statement)."""
    rows = [PushTally(push_id=push_id, key=key[:80], n=n) for (push_id, key), n in sorted(deltas.items()) if n]
    if rows:
        PushTally.objects.bulk_create(rows)


def rows_deltas(before: Iterable[Sequence[Any]], after: Iterable[Sequence[Any]]) -> Counter[tuple[int, str]]:
    """Additions for rows that changed: (push_id, status, reason, sent_at, unfollowed_at, clicked_at) before and
    after."""
    deltas: Counter[tuple[int, str]] = Counter()
    for push_id, *row in before:
        for key in row_keys(*row):
            deltas[(push_id, key)] -= 1
    for push_id, *row in after:
        for key in row_keys(*row):
            deltas[(push_id, key)] += 1
    return deltas


def tally_open_rows_closed(*, push_id: int, status: str, reason: str, n: int) -> None:
    """`n` rows of a push left queued or sending for `status` (no sent_at: a skip, an error, an unknown)."""
    if n:
        tally_add(Counter({(push_id, key): n for key in row_keys(status, reason, None, None)}))


# --- Writers that need the rows' values before the change -----------------------------------------------------------

TALLY_FIELDS = ("push_id", "status", "reason", "sent_at", "unfollowed_at", "clicked_at")


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
    from ...selectors import baseline_counts

    if push.started_at is None or PushTally.objects.filter(push_id=push.pk, key=BASELINE_FOLLOWERS).exists():
        return
    unfollows, followers = baseline_counts(before=push.started_at)
    tally_add({(push.pk, BASELINE_UNFOLLOWS): unfollows, (push.pk, BASELINE_FOLLOWERS): followers or 0})
    if not followers:  # a zero is no row: mark the baseline as taken
        PushTally.objects.create(push_id=push.pk, key=BASELINE_FOLLOWERS, n=0)


# --- Readers ----------------------------------------------------------------------------------------------------------


def push_tallies(*, push_ids: Iterable[int], using: str | None = None) -> dict[int, Counter[str]]:
    """{push id: {counter: value}} (one query: the sum of each push's rows per counter)."""
    ids = list(push_ids)
    out: dict[int, Counter[str]] = {pk: Counter() for pk in ids}
    qs = PushTally.objects.using(using) if using else PushTally.objects
    for push_id, key, n in qs.filter(push_id__in=ids).values_list("push_id", "key").annotate(n=Sum("n")):
        if n:
            out[push_id][key] = n
    return out


def by_status(tally: Counter[str]) -> dict[str, int]:
    """Deliveries by final status, and "open" (queued or sending) = recipients - the final ones."""
    counts = {s: tally.get(STATUS + s, 0) for s in D.values if s not in OPEN}
    counts["open"] = max(0, tally.get(RECIPIENTS, 0) - sum(counts.values()))
    return counts


def skipped_by_reason(tally: Counter[str]) -> dict[str, int]:
    return {key.removeprefix(SKIPPED): n for key, n in sorted(tally.items()) if key.startswith(SKIPPED) and n}


# --- Maintenance ------------------------------------------------------------------------------------------------------


def tallies_compact(*, push_id: int | None = None, above: int = COMPACT_ABOVE) -> int:
    """Fold each push's rows into one per counter (all pushes with more than `above` rows, or the one given).
    Atomic per push: a reader sees the rows before or after, never both. Returns the pushes folded."""
    if push_id is not None:
        ids = [push_id]
    else:
        from django.db.models import Count

        ids = list(
            PushTally.objects.values("push_id")
            .annotate(c=Count("*"))
            .filter(c__gt=above)
            .values_list("push_id", flat=True)
        )
    for pk in ids:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                table = PushTally._meta.db_table
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"WITH gone AS (DELETE FROM {table} WHERE push_id = %s RETURNING key, n) "  # noqa: S608
                        f"INSERT INTO {table} (push_id, key, n) SELECT %s, key, SUM(n) FROM gone GROUP BY key "
                        "HAVING SUM(n) <> 0 OR key = %s",
                        [pk, pk, BASELINE_FOLLOWERS],
                    )
            else:
                rows = list(PushTally.objects.select_for_update().filter(push_id=pk).values_list("pk", "key", "n"))
                sums: Counter[str] = Counter()
                for _pk, key, n in rows:
                    sums[key] += n
                PushTally.objects.filter(pk__in=[r[0] for r in rows]).delete()
                PushTally.objects.bulk_create(
                    PushTally(push_id=pk, key=k, n=n) for k, n in sums.items() if n or k == BASELINE_FOLLOWERS
                )
    return len(ids)


def recount(*, push_id: int) -> Counter[str]:
    """The counters recounted from the rows: deliveries (with their unfollowed_at), link_click interactions."""
    from django.db.models import Count, Min

    from accounts.models import Interaction

    out: Counter[str] = Counter()
    rows = Delivery.objects.filter(push_id=push_id).order_by()
    if connection.vendor == "postgresql":
        table = Delivery._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE push_id = %s", [push_id])  # noqa: S608
            out[RECIPIENTS] = cursor.fetchone()[0]
            cursor.execute(
                f"SELECT k.key, count(*) FROM {table} d CROSS JOIN LATERAL {row_keys_sql('d')} AS k(key) "  # noqa: S608
                "WHERE d.push_id = %s AND k.key IS NOT NULL GROUP BY k.key",
                [push_id],
            )
            out.update(dict(cursor.fetchall()))
    else:
        for values in rows.values_list(*TALLY_FIELDS[1:]).annotate(n=Count("*")):
            *row, n = values
            out[RECIPIENTS] += n
            for key in row_keys(*row):
                out[key] += n
    clicks = Interaction.objects.filter(kind=Interaction.Kind.LINK_CLICK, data__push_id=push_id).order_by()
    out[CLICKS] = clicks.count()
    out[FORWARDED_CLICKS] = clicks.filter(data__has_key="shared_by").count()
    out[CLICKERS] = clicks.values("subscriber_id").annotate(first=Min("pk")).count()
    return +out


def unfollowed_recompute(*, push_id: int) -> int:
    """Each delivery's `unfollowed_at` from the follow history (the rebuild's first step). Returns rows changed."""
    from accounts.models import FollowEvent

    table, follows = Delivery._meta.db_table, FollowEvent._meta.db_table
    lookback = int(UNFOLLOW_LOOKBACK.total_seconds())
    if connection.vendor == "postgresql":
        sql = (
            f"UPDATE {table} d SET unfollowed_at = f.first FROM (SELECT d2.id, (SELECT min(e.at) FROM {follows} e "  # noqa: S608
            "WHERE e.subscriber_id = d2.subscriber_id AND e.kind = %s AND e.at >= COALESCE(d2.claimed_at, d2.sent_at) "
            f"AND e.at < COALESCE(d2.claimed_at, d2.sent_at) + interval '{lookback} seconds') AS first "
            f"FROM {table} d2 WHERE d2.push_id = %s) f "
            "WHERE d.id = f.id AND d.unfollowed_at IS DISTINCT FROM f.first"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [FollowEvent.Kind.UNFOLLOW, push_id])
            return cursor.rowcount
    unfollows: dict[int, list[dt.datetime]] = {}
    rows = list(
        Delivery.objects.filter(push_id=push_id).values_list(
            "pk", "subscriber_id", Coalesce("claimed_at", "sent_at"), "unfollowed_at"
        )
    )
    for subscriber_id, at in FollowEvent.objects.filter(
        kind=FollowEvent.Kind.UNFOLLOW, subscriber_id__in={r[1] for r in rows}
    ).values_list("subscriber_id", "at"):
        unfollows.setdefault(subscriber_id, []).append(at)
    changed = 0
    for pk, subscriber_id, claimed_at, unfollowed_at in rows:
        inside = [
            a
            for a in unfollows.get(subscriber_id, ())
            if claimed_at and claimed_at <= a < claimed_at + UNFOLLOW_LOOKBACK
        ]
        first = min(inside) if inside else None
        if first != unfollowed_at:
            changed += Delivery.objects.filter(pk=pk).update(unfollowed_at=first)
    return changed


def clicked_recompute(*, push_id: int) -> int:
    """Each delivery's `clicked_at` (its subscriber's first click of the push) from the clicks (the rebuild's first
    step). Returns the rows changed."""
    from django.db.models import Min

    from accounts.models import Interaction

    firsts = dict(
        Interaction.objects.filter(kind=Interaction.Kind.LINK_CLICK, data__push_id=push_id)
        .order_by()
        .values_list("subscriber_id")
        .annotate(first=Min("created_at"))
    )
    rows = Delivery.objects.filter(push_id=push_id)
    stamped = rows.filter(clicked_at__isnull=False).values_list("pk", "subscriber_id", "clicked_at")
    changed = 0
    for pk, subscriber_id, clicked_at in stamped.iterator(chunk_size=5000):
        if firsts.get(subscriber_id) != clicked_at:
            changed += rows.filter(pk=pk).update(clicked_at=firsts.get(subscriber_id))
        firsts.pop(subscriber_id, None)
    by_first: dict[dt.datetime, list[int]] = {}
    for subscriber_id, first in firsts.items():
        by_first.setdefault(first, []).append(subscriber_id)
    for first, subscriber_ids in by_first.items():
        changed += rows.filter(subscriber_id__in=subscriber_ids, clicked_at__isnull=True).update(clicked_at=first)
    return changed


def tally_lock() -> None:
    """Before a writer of several statements locks deliveries: the counters' table first (the lock every INSERT
    takes, held to the end of the transaction), so that it and a rebuild always lock in the same order."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {PushTally._meta.db_table} IN ROW EXCLUSIVE MODE")


def tallies_rebuild(*, push_id: int) -> Counter[str]:
    """Recount a push's counters from its rows and replace them (the baseline is kept, or taken). Writers of other
    transactions wait for the lock of the counters' table meanwhile, so none is lost or counted twice."""
    push = Push.objects.get(pk=push_id)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {PushTally._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        unfollowed_recompute(push_id=push_id)
        clicked_recompute(push_id=push_id)
        counts = recount(push_id=push_id)
        kept = PushTally.objects.filter(push_id=push_id, key__in=(BASELINE_UNFOLLOWS, BASELINE_FOLLOWERS))
        baseline = Counter(dict(kept.values_list("key").annotate(n=Sum("n")).values_list("key", "n")))
        PushTally.objects.filter(push_id=push_id).delete()
        tally_add({(push_id, key): n for key, n in {**counts, **baseline}.items()})
        if BASELINE_FOLLOWERS in baseline and not baseline[BASELINE_FOLLOWERS]:
            PushTally.objects.create(push_id=push_id, key=BASELINE_FOLLOWERS, n=0)
    baseline_record(push=push)
    return counts
