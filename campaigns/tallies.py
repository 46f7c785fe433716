"""A channel's counters, kept as follows are attributed: `follows` (follow touches through the channel) and
`first_touches` (subscribers whose source channel it is). /api/channels/ and the admin read their sums (a few rows a
channel) instead of counting the subscribers and touches of each channel.

Rows of campaigns.ChannelTally are only inserted, in the transaction that writes what they count
(services.channels_attribute and channels_attribute_imported, run exactly once per interaction), so that follows of
one popular QR code on several workers never wait for one row's lock; the beat folds them (`tallies_compact`), and
`tallies_rebuild` recounts them from the touches and the subscribers (`manage.py channel_tallies_rebuild`: the
backfill, and a check).
"""

from __future__ import annotations

from collections import Counter

from django.db import connection, transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from accounts.models import Subscriber

from .models import Channel, ChannelTally, ChannelTouch

FOLLOWS = "follows"
FIRST_TOUCHES = "first_touches"
COMPACT_ABOVE = 64


def tally_add(deltas: Counter[tuple[int, str]] | dict[tuple[int, str], int]) -> None:
    rows = [ChannelTally(channel_id=c, key=k, n=n) for (c, k), n in sorted(deltas.items()) if n]
    if rows:
        ChannelTally.objects.bulk_create(rows)


def tally_sum(key: str) -> Coalesce:
    """A channel's counter, as an annotation of a Channel queryset (one indexed sum per channel)."""
    sub = (
        ChannelTally.objects.filter(channel=OuterRef("pk"), key=key)
        .order_by()
        .values("channel")
        .annotate(n=Sum("n"))
        .values("n")[:1]
    )
    return Coalesce(Subquery(sub, output_field=IntegerField()), 0)


def recount() -> Counter[tuple[int, str]]:
    out: Counter[tuple[int, str]] = Counter()
    follows = ChannelTouch.objects.filter(kind=ChannelTouch.Kind.FOLLOW).order_by().values_list("channel_id")
    for channel_id, n in follows.annotate(n=Count("*")):
        out[(channel_id, FOLLOWS)] = n
    firsts = Subscriber.objects.filter(source_channel__isnull=False).order_by().values_list("source_channel_id")
    for channel_id, n in firsts.annotate(n=Count("*")):
        out[(channel_id, FIRST_TOUCHES)] = n
    return out


def tallies_rebuild() -> Counter[tuple[int, str]]:
    """Replace every channel's counters with a recount. Attributions of other transactions wait meanwhile (the lock
    of the counters' table), so none is lost or counted twice."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {ChannelTally._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        counts = recount()
        ChannelTally.objects.all().delete()
        tally_add(counts)
    return counts


def tally_lock() -> None:
    """The counters' table first, before the rows it counts (the order a rebuild locks in)."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {ChannelTally._meta.db_table} IN ROW EXCLUSIVE MODE")


def tallies_compact(*, above: int = COMPACT_ABOVE) -> int:
    """Fold the rows of each channel with more than `above` into one per counter. Returns the channels folded."""
    ids = list(
        ChannelTally.objects.values("channel_id")
        .annotate(c=Count("*"))
        .filter(c__gt=above)
        .values_list("channel_id", flat=True)
    )
    for channel_id in ids:
        with transaction.atomic():
            rows = list(
                ChannelTally.objects.select_for_update().filter(channel_id=channel_id).values_list("pk", "key", "n")
            )
            sums: Counter[str] = Counter()
            for _pk, key, n in rows:
                sums[key] += n
            ChannelTally.objects.filter(pk__in=[r[0] for r in rows]).delete()
            ChannelTally.objects.bulk_create(
                ChannelTally(channel_id=channel_id, key=k, n=n) for k, n in sums.items() if n
            )
    return len(ids)


def channels_counted():
    """Channels with `follow_count` and `first_touch_count` from their counters."""
    return Channel.objects.annotate(follow_count=tally_sum(FOLLOWS), first_touch_count=tally_sum(FIRST_TOUCHES))
