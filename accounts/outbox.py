"""The relay of the interaction outbox: hands ids of committed interactions to Celery from a background thread.

The interaction row is the outbox (processed_at empty until its follow-ups ran), so the enqueue is only a way to
start the work sooner: the callback's request must not wait for the broker. `submit()` (called on commit) queues the
id in memory; one daemon thread per process gathers ids for up to 50 ms (500 ms during a burst) and sends them as one
task (`accounts.tasks.interactions_process`). If the broker is down, or the process dies first, the ids are lost here
and the sweeper (`accounts.tasks.interactions_sweep`, every minute) processes the rows instead.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence

logger = logging.getLogger(__name__)

BATCH = 100
GATHER_SECONDS = 0.05
# Under a burst (the previous task went less than BUSY_SECONDS ago) ids are gathered longer: a few tasks of many ids
# instead of twenty a second of a few each, which the worker would run long after their batches were drained.
GATHER_BUSY_SECONDS = 0.5
BUSY_SECONDS = 1.0
CONNECT_TIMEOUT = 2.0  # seconds

_queue: queue.SimpleQueue[int] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None
_owner_pid: int | None = None
_pending = 0
_drained = threading.Condition(_lock)


def submit(interaction_id: int) -> None:
    """Queue an interaction for processing; returns at once."""
    global _pending
    with _lock:
        _pending += 1
        _ensure_thread()
    _queue.put(interaction_id)


def flush(timeout: float = 5.0) -> bool:
    """Wait until everything submitted so far was handed to the broker (or given up). For tests and shutdown."""
    with _drained:
        return _drained.wait_for(lambda: _pending == 0, timeout=timeout)


def _ensure_thread() -> None:
    global _thread, _owner_pid
    if _thread is not None and _thread.is_alive() and _owner_pid == os.getpid():
        return
    _owner_pid = os.getpid()  # after a fork the parent's thread does not exist in the child
    _thread = threading.Thread(target=_run, name="interaction-outbox-relay", daemon=True)
    _thread.start()


def _run() -> None:
    global _pending
    published = 0.0
    while True:
        ids = [_queue.get()]
        # A burst becomes one task instead of one per follow. The thread sleeps through the gathering instead of
        # waking up for each id (a wake-up takes the GIL from the request that submitted it); a full batch waiting
        # already goes at once.
        if _queue.qsize() < BATCH - 1:
            busy = time.monotonic() - published < BUSY_SECONDS
            time.sleep(GATHER_BUSY_SECONDS if busy else GATHER_SECONDS)
        while len(ids) < BATCH:
            try:
                ids.append(_queue.get_nowait())
            except queue.Empty:
                break
        publish(ids)
        published = time.monotonic()
        with _drained:
            _pending -= len(ids)
            _drained.notify_all()


def publish(ids: Sequence[int]) -> None:
    """Hand these committed interactions to Celery now, in tasks of at most BATCH ids, failing fast when the broker
    is down (the sweeper processes them then). For callers already off the request path (the click buffer's drain);
    a request submits ids instead."""
    from .tasks import interactions_process

    for start in range(0, len(ids), BATCH):
        chunk = list(ids[start : start + BATCH])
        try:
            with interactions_process.app.producer_or_acquire() as producer:
                # Fail fast when the broker is down (kombu would otherwise retry the connection for a long time).
                producer.connection.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT)
                interactions_process.apply_async((chunk,), retry=False, producer=producer)
        except Exception:
            logger.warning("could not enqueue interactions %s; the sweeper will process them", chunk, exc_info=True)
