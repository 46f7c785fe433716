"""Maintenance of the counters: folding a push's rows into one per counter, and recounting them from the rows they
count (the definition they keep, and the backfill)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db import connection, transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from ....models import Delivery, Push, PushTally
from .keys import (
    BASELINE_FOLLOWERS,
    BASELINE_UNFOLLOWS,
    CLICKERS,
    CLICKS,
    COMPACT_ABOVE,
    FORWARDED_CLICKS,
    RECIPIENTS,
    TALLY_FIELDS,
    UNFOLLOW_LOOKBACK,
    row_keys,
    row_keys_sql,
    tally_add,
)
from .writers import baseline_record


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
