"""The counters' keys, what one delivery row adds to them (in Python and in SQL), and their rows: added, read and
locked. The package's docstring says what each counter counts and when."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Sum

from ....models import PushTally
from ..rows import OPEN, D

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


TALLY_FIELDS = ("push_id", "status", "reason", "sent_at", "unfollowed_at", "clicked_at")


def tally_lock() -> None:
    """Before a writer of several statements locks deliveries: the counters' table first (the lock every INSERT
    takes, held to the end of the transaction), so that it and a rebuild always lock in the same order."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {PushTally._meta.db_table} IN ROW EXCLUSIVE MODE")


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
