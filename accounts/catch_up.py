"""Catching up with a backlog of pending interactions: after an import, an outage of the worker or a replay, when
thousands or millions wait for their follow-ups (`manage.py interactions_catch_up`).

The worker's tasks claim 100 to a few hundred interactions at a time, so that a reply never waits behind a big batch
(accounts.follow_ups.interactions_drain). A backlog is cheaper by batches of thousands: the follow-ups are
set-based, so each of their few statements serves the whole batch. The catch-up claims such batches through the
same function as the worker (accounts.follow_ups.interactions_process: the claim, the follow-ups of the dispatch
table, the mark, in one transaction, exactly once), in one process or several:

- each process takes only the interactions of its share of the subscribers (subscriber id modulo the number of
  processes), so two processes never update the same subscriber's rows (no waits on each other's locks, no
  deadlocks between two big batches); the worker may run meanwhile: FOR UPDATE SKIP LOCKED keeps them apart, and
  what one holds the other skips;
- it takes what was pending when it started (received before), oldest first, and claims each batch from the time
  of the last one it claimed, so that its claims do not walk again over the index entries of the rows it has
  already processed (on a big backlog each claim would otherwise scan them, until the next VACUUM).

Interactions whose follow-ups fail stay pending for the sweeper, as with the worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from django.db import connections
from django.utils import timezone

from . import follow_ups
from .follow_ups import FollowUpRunner

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 2_000


class CatchUp(NamedTuple):
    processed: int  # interactions whose follow-ups ran and that are now processed
    seconds: float
    processes: int
    failed: int  # processes that stopped on an error (their share's rest stays pending)


def interactions_catch_up(
    *,
    run: FollowUpRunner,
    batch: int = CATCH_UP_BATCH,
    processes: int = 1,
    received_before: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: float = 10.0,
) -> CatchUp:
    """Process every interaction pending now (or received before `received_before`) by batches of `batch`, in
    `processes` processes (forked: the caller's connections are closed first). `progress(processed so far)` is called
    about every `progress_every` seconds in the calling process."""
    started = time.monotonic()
    before = received_before or timezone.now()
    if processes <= 1:
        done = _share(run=run, batch=batch, share=None, received_before=before, counter=None)
        return CatchUp(done, time.monotonic() - started, 1, 0)
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    connections.close_all()  # each process opens its own
    children = [
        context.Process(target=_child, args=(run, batch, (k, processes), before, counter), daemon=True)
        for k in range(processes)
    ]
    for child in children:
        child.start()
    while alive := [child for child in children if child.is_alive()]:
        alive[0].join(progress_every)
        if progress:
            progress(counter.value)
    failed = sum(1 for child in children if child.exitcode != 0)
    return CatchUp(counter.value, time.monotonic() - started, processes, failed)


def _child(run: FollowUpRunner, batch: int, share: tuple[int, int], before: datetime, counter) -> None:
    try:
        _share(run=run, batch=batch, share=share, received_before=before, counter=counter)
    except Exception:
        logger.exception("the catch-up of share %s stopped; its interactions left stay pending", share)
        raise SystemExit(1) from None
    finally:
        connections.close_all()


def _share(
    *, run: FollowUpRunner, batch: int, share: tuple[int, int] | None, received_before: datetime, counter
) -> int:
    """One process's part: batches of the oldest pending interactions of its share, each from the time of the last
    one claimed, until fewer than a batch are left. Returns how many were processed."""
    last: list[datetime] = []

    def run_and_remember(interactions) -> None:
        last.append(max(interaction.received_at for interaction in interactions))
        run(interactions)

    done, received_from = 0, None
    while True:
        result = follow_ups.interactions_process(
            run=run_and_remember, limit=batch, exclude=follow_ups._failed, received_before=received_before,
            received_from=received_from, share=share,
        )  # fmt: skip
        done += result.done
        if counter is not None:
            with counter.get_lock():
                counter.value += result.done
        if result.claimed < batch:
            return done
        received_from = max(last)  # the rows left before it are processed, failed (excluded) or held by the worker
        last.clear()
