"""Follow-up processing (Celery): the interactions the callback stored with follow-ups are claimed by batches, their
follow-ups run once for the whole batch (wechat_crm.wechat.dispatch), and they are marked processed, exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models.functions import Coalesce, Mod
from django.utils import timezone

from .models import Interaction, Subscriber

logger = logging.getLogger(__name__)

FollowUpRunner = Callable[[list[Interaction]], None]  # runs the follow-ups of a batch (wechat_crm.wechat.dispatch)
PROCESS_BATCH = 100  # the first claim of a drain: a reply's follow-ups wait for no more than this
PROCESS_BATCH_MAX = 400  # a backlog is claimed by batches growing up to this: fewer statements per interaction


class Processed(NamedTuple):
    claimed: int  # pending interactions this call locked
    done: int  # of them, those whose follow-ups ran and that are now processed


# Interactions whose follow-ups failed alone in this process: the opportunistic claims of interactions_drain leave
# them to the sweeper, so that one bad interaction does not make every batch fail first.
_failed: set[int] = set()


def _claim(
    *,
    interaction_ids: Sequence[int] | None = None,
    received_before: datetime | None = None,
    limit: int | None = None,
    exclude: set[int] | None = None,
    received_from: datetime | None = None,
    share: tuple[int, int] | None = None,
) -> list[Interaction]:
    """Lock pending interactions (FOR UPDATE SKIP LOCKED: a concurrent worker skips them, and no one else can mark
    them processed until this transaction ends), with their subscribers, and mark them processed: the mark commits
    with their follow-ups or not at all. The oldest received are claimed first (the partial index of pending rows);
    the batch is returned in the order they happened. On PostgreSQL one statement."""
    if connection.vendor == "postgresql":
        batch = _claim_postgresql(interaction_ids=interaction_ids, received_before=received_before, limit=limit,
                                  exclude=exclude, received_from=received_from, share=share)  # fmt: skip
    else:
        pending = Interaction.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            processed_at__isnull=True
        )
        if interaction_ids is not None:
            pending = pending.filter(pk__in=interaction_ids)
        if received_before is not None:
            pending = pending.filter(received_at__lt=received_before)
        if received_from is not None:
            pending = pending.filter(received_at__gte=received_from)
        if share is not None:
            share_of = Mod(Coalesce("subscriber_id", 0), share[1])
            pending = pending.alias(catch_up_share=share_of).filter(catch_up_share=share[0])
        if exclude:
            pending = pending.exclude(pk__in=exclude)
        pending = pending.select_related("subscriber").order_by("received_at", "id")
        batch = list(pending[:limit] if limit else pending)
        if batch:
            Interaction.objects.filter(pk__in=[i.pk for i in batch]).update(processed_at=timezone.now())
    return sorted(batch, key=lambda interaction: (interaction.created_at, interaction.pk))


def _columns(model) -> list[str]:
    return [f.column for f in model._meta.concrete_fields]


def _claim_postgresql(
    *,
    interaction_ids: Sequence[int] | None,
    received_before: datetime | None,
    limit: int | None,
    exclude: set[int] | None,
    received_from: datetime | None = None,
    share: tuple[int, int] | None = None,
) -> list[Interaction]:
    """The claim, the mark and the rows with their subscribers in one round trip: UPDATE ... RETURNING the locked
    rows, joined to their subscribers, built into model instances without a second query."""
    where, params = ["processed_at IS NULL"], []
    if interaction_ids is not None:
        where.append("id = ANY(%s::bigint[])")
        params.append(list(interaction_ids))
    if received_before is not None:
        where.append("received_at < %s")
        params.append(received_before)
    if exclude:
        where.append("NOT (id = ANY(%s::bigint[]))")
        params.append(sorted(exclude))
    if received_from is not None:
        where.append("received_at >= %s")
        params.append(received_from)
    if share is not None:
        # Remainder k of n written as "none of the others": for `mod(...) = k` the planner guesses 0.5% of the rows
        # and reads and sorts every pending row for each claim instead of following the pending index's order.
        where.append("mod(COALESCE(subscriber_id, 0), %s) <> ALL(%s::bigint[])")
        params.extend([share[1], [other for other in range(share[1]) if other != share[0]]])
    limit_sql = ""
    if limit:
        limit_sql = "LIMIT %s"
        params.append(limit)
    params.append(timezone.now())
    i_columns, s_columns = _columns(Interaction), _columns(Subscriber)
    qn = connection.ops.quote_name
    sql = (
        f"WITH claimed AS (SELECT id FROM {Interaction._meta.db_table} WHERE {' AND '.join(where)} "  # noqa: S608
        f"ORDER BY received_at, id {limit_sql} FOR UPDATE SKIP LOCKED), "
        f"marked AS (UPDATE {Interaction._meta.db_table} AS i SET processed_at = %s FROM claimed "
        f"WHERE i.id = claimed.id RETURNING {', '.join('i.' + qn(c) for c in i_columns)}) "
        f"SELECT {', '.join('m.' + qn(c) for c in i_columns)}, {', '.join('s.' + qn(c) for c in s_columns)} "
        f"FROM marked AS m LEFT JOIN {Subscriber._meta.db_table} AS s ON s.id = m.subscriber_id"
    )  # identifiers from the models, values as parameters
    i_names = [f.attname for f in Interaction._meta.concrete_fields]
    s_names = [f.attname for f in Subscriber._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    i_converters = _converters(tuple(Interaction._meta.concrete_fields))  # once a batch, not once a row
    s_converters = _converters(tuple(Subscriber._meta.concrete_fields))
    cache = Interaction._meta.get_field("subscriber")
    alias, n = connection.alias, len(i_names)
    batch = []
    for row in rows:
        interaction = Interaction.from_db(alias, i_names, _converted(row[:n], i_converters))
        if row[n] is not None:
            subscriber = Subscriber.from_db(alias, s_names, _converted(row[n:], s_converters))
            cache.set_cached_value(interaction, subscriber)
        elif interaction.subscriber_id is None:
            cache.set_cached_value(interaction, None)
        batch.append(interaction)
    return batch


def _converted(values, converters_of_fields: list[tuple[int, Any, list]]) -> list:
    """The values as the ORM gives them (JSON decoded, etc.): the database converters of the fields that have
    some (`_converters`; most have none) applied."""
    out = list(values)
    for n, field, converters in converters_of_fields:
        value = out[n]
        for converter in converters:
            value = converter(value, field, connection)
        out[n] = value
    return out


@lru_cache(maxsize=8)
def _converters(fields: tuple) -> list[tuple[int, Any, list]]:
    return [(n, f, converters) for n, f in enumerate(fields) if (converters := f.get_db_converters(connection))]


def interactions_process(
    *,
    run: FollowUpRunner,
    interaction_ids: Sequence[int] | None = None,
    received_before: datetime | None = None,
    limit: int | None = None,
    exclude: set[int] | None = None,
    received_from: datetime | None = None,
    share: tuple[int, int] | None = None,
) -> Processed:
    """Claim a batch of pending interactions (the given ids, or the `limit` oldest, received before a time and from
    a time if given; with `share` (k, n) only those of subscribers whose id is k modulo n: accounts.catch_up), run
    their follow-ups once for the whole batch and mark them processed, in one transaction: exactly once.

    When the batch fails, each of its interactions is tried again alone, so that one failing interaction does not
    hold back the others; it stays pending for the sweeper. A batch of one re-raises its error.
    """
    claimed: list[int] = []
    try:
        with transaction.atomic():
            batch = _claim(interaction_ids=interaction_ids, received_before=received_before, limit=limit,
                           exclude=exclude, received_from=received_from, share=share)  # fmt: skip
            claimed = [interaction.pk for interaction in batch]
            if batch:
                run(batch)
        return Processed(len(claimed), len(claimed))
    except Exception:
        if len(claimed) <= 1:
            _failed.update(claimed)
            raise
        logger.warning("a batch of %d interactions failed; processing them one by one", len(claimed), exc_info=True)
    done = 0
    for interaction_id in claimed:
        try:
            done += interactions_process(run=run, interaction_ids=[interaction_id]).done
        except Exception:
            logger.exception("processing interaction %s failed; it stays pending", interaction_id)
    return Processed(len(claimed), done)


def interactions_drain(*, run: FollowUpRunner, interaction_ids: Sequence[int], max_batches: int = 20) -> int:
    """The outbox relay's task: process the given interactions and, by batches of the oldest pending ones, whatever
    else is pending (up to `max_batches`): the first batch of PROCESS_BATCH, and each after a full one twice the
    size, up to PROCESS_BATCH_MAX (idle, a batch is small and its replies go at once; behind a backlog, the
    statements of each follow-up serve more interactions). When the worker falls behind, the tasks queued behind
    this one find their interactions done and cost one query each (they return at once). Returns how many were
    processed."""
    if len(_failed) > 10_000:
        _failed.clear()
    if interaction_ids and not Interaction.objects.filter(pk__in=interaction_ids, processed_at__isnull=True).exists():
        return 0  # an earlier task drained them: whatever else is pending has its own task queued (one query)
    done, size = 0, PROCESS_BATCH
    for _ in range(max_batches):
        result = interactions_process(run=run, limit=size, exclude=_failed)
        done += result.done
        if result.claimed < size:  # nothing else pending, or locked by a worker that processes it
            return done
        if not result.done:
            break
        size = min(2 * size, PROCESS_BATCH_MAX)  # a full batch: more are waiting; each batch's statements serve more
    # The backlog goes on (or a batch failed): this task's own interactions are not left waiting behind it.
    left = [pk for pk in interaction_ids if pk not in _failed]
    return done + (interactions_process(run=run, interaction_ids=left).done if left else 0)


def interactions_process_pending(*, older_than: timedelta, limit: int, run: FollowUpRunner) -> int:
    """The sweeper: process, by batches, interactions whose task was never enqueued (broker down) or lost. Returns
    how many were processed."""
    received_before = timezone.now() - older_than
    done = 0
    while done < limit:
        result = interactions_process(run=run, received_before=received_before, limit=min(PROCESS_BATCH, limit - done))
        done += result.done
        if result.claimed < PROCESS_BATCH or not result.done:
            break
    return done
