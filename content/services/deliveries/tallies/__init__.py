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

* keys.py     the counters' keys, `row_keys` (in Python and SQL), adding rows, reading them, the table's lock;
* writers.py  changes that need the rows' values before them (job-finish reports, skips, unfollows, clicks);
* rebuild.py  folding a push's rows, and recounting them from the rows they count.

"Unfollowed within 24 h" is: the message was sent or delivered, and the subscriber's first unfollow since the message
was claimed for sending (since it was sent, for rows written before claims were) is at or after `sent_at` and before
`sent_at` + 24 h.
"""

from .keys import (
    BASELINE_FOLLOWERS,
    BASELINE_UNFOLLOWS,
    CLICKERS,
    CLICKS,
    COMPACT_ABOVE,
    FORWARDED_CLICKS,
    REACHED,
    REACHED_CLICKERS,
    REACHED_STATUSES,
    RECIPIENTS,
    SKIPPED,
    STATUS,
    TALLY_FIELDS,
    UNFOLLOW_LOOKBACK,
    UNFOLLOW_WINDOWS,
    by_status,
    push_tallies,
    row_keys,
    row_keys_sql,
    rows_deltas,
    skipped_by_reason,
    tally_add,
    tally_lock,
    tally_open_rows_closed,
)
from .rebuild import clicked_recompute, recount, tallies_compact, tallies_rebuild, unfollowed_recompute
from .writers import (
    baseline_record,
    clicks_record,
    deliveries_queued_skip,
    deliveries_transition,
    deliveries_unfollowed,
)

__all__ = [
    "BASELINE_FOLLOWERS",
    "BASELINE_UNFOLLOWS",
    "CLICKERS",
    "CLICKS",
    "COMPACT_ABOVE",
    "FORWARDED_CLICKS",
    "REACHED",
    "REACHED_CLICKERS",
    "REACHED_STATUSES",
    "RECIPIENTS",
    "SKIPPED",
    "STATUS",
    "TALLY_FIELDS",
    "UNFOLLOW_LOOKBACK",
    "UNFOLLOW_WINDOWS",
    "baseline_record",
    "by_status",
    "clicked_recompute",
    "clicks_record",
    "deliveries_queued_skip",
    "deliveries_transition",
    "deliveries_unfollowed",
    "push_tallies",
    "recount",
    "row_keys",
    "row_keys_sql",
    "rows_deltas",
    "skipped_by_reason",
    "tallies_compact",
    "tallies_rebuild",
    "tally_add",
    "tally_lock",
    "tally_open_rows_closed",
    "unfollowed_recompute",
]
