"""The follower sync: `follower_sync_run()` walks the pages of WeChat's follower list (the client's followers_page,
from next_openid) and fetches the profiles of every page in chunks of 100 (profiles.batchget), upserting subscribers
by openid. The cursor is saved in an `accounts.FollowerSync` row after each page, so a run that crashed or was
stopped resumes where it left off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from wechat_crm.wechat.errors import WeChatError

from .models import FollowerSync, Subscriber
from .profiles import BATCHGET_SIZE, batchget, profile_values, profiles_apply, subscribe_time
from .signals import followers_imported_with_scene


class Upserted(NamedTuple):
    """Followers stored by an upsert, and how many of them are new subscribers."""

    stored: int
    created: int


FOLLOWER_SYNC_LOCK = 0x466F6C6C  # PostgreSQL advisory lock key: one import at a time


class FollowerSyncBusy(Exception):
    """Another process is importing followers right now."""


@contextmanager
def _follower_sync_lock():
    """A session-level advisory lock on PostgreSQL (held across the run's many transactions)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [FOLLOWER_SYNC_LOCK])
        if not cursor.fetchone()[0]:
            raise FollowerSyncBusy(str(_("Another follower import is running.")))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [FOLLOWER_SYNC_LOCK])


class FollowerSyncError(Exception):
    """The sync stopped on a WeChat error; its row is marked failed and the next run resumes from its cursor."""

    def __init__(self, sync: FollowerSync, error: WeChatError):
        super().__init__(f"{error.message} ({error})")
        self.sync = sync
        self.error = error


def follower_sync_unfinished() -> FollowerSync | None:
    """The sync the next run resumes (the latest running or failed one), if any."""
    return FollowerSync.objects.exclude(status=FollowerSync.Status.DONE).order_by("-started_at", "-id").first()


def follower_sync_current(*, restart: bool = False) -> FollowerSync:
    """The unfinished sync to resume (the latest running or failed one), or a new one."""
    unfinished = FollowerSync.objects.exclude(status=FollowerSync.Status.DONE)
    if restart:
        abandoned = gettext("abandoned: a new sync was started")
        unfinished.update(status=FollowerSync.Status.DONE, finished_at=timezone.now(), error=abandoned)
    sync = unfinished.order_by("-started_at", "-id").first()
    if sync is not None:
        if sync.status != FollowerSync.Status.RUNNING:
            sync.status = FollowerSync.Status.RUNNING
            sync.error = ""
            sync.save(update_fields=["status", "error", "updated_at"])
        return sync
    try:
        with transaction.atomic():
            return FollowerSync.objects.create()
    except IntegrityError:  # another process created it first
        return FollowerSync.objects.get(status=FollowerSync.Status.RUNNING)


def followers_upsert(*, infos: Sequence[dict[str, Any]], now: datetime, client=None) -> Upserted:
    """Create or update subscribers from WeChat's profiles of current followers."""
    following = [i for i in infos if i.get("subscribe") and i.get("openid")]
    if not following:
        return Upserted(0, 0)
    openids = [i["openid"] for i in following]
    existing = set(Subscriber.objects.filter(openid__in=openids).values_list("openid", flat=True))
    new = [
        Subscriber(
            openid=i["openid"],
            is_following=True,
            subscribed_at=subscribe_time(i) or now,
            profile_fetched_at=now,
            **profile_values(i),
        )
        for i in following
        if i["openid"] not in existing
    ]
    Subscriber.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent callback may have inserted one
    rows = list(Subscriber.objects.filter(openid__in=openids).only("id", "openid", "subscribed_at", "updated_at"))
    profiles_apply(subscribers=rows, infos=following, invalid=[], now=now, imported=True, client=client)
    scened = [s.openid for s in new if s.qr_scene_str]
    if scened:  # followed through a QR code before we saw it: WeChat's qr_scene_str names the channel
        followers_imported_with_scene.send(sender=Subscriber, openids=scened)
    return Upserted(len(following), len(new))


ProgressCallback = Callable[[int, int | None], None]  # (followers imported so far, total on WeChat)


def follower_sync_run(
    *,
    max_pages: int | None = None,
    restart: bool = False,
    on_progress: ProgressCallback | None = None,
    client=None,
) -> FollowerSync:
    """Import the account's followers page by page, resuming the unfinished sync. Stops after `max_pages` pages
    when given (the sync stays running and the next run continues). Raises FollowerSyncError on a WeChat error,
    FollowerSyncBusy when another import runs."""
    with _follower_sync_lock():
        return _follower_sync_run(max_pages=max_pages, restart=restart, on_progress=on_progress, client=client)


def _follower_sync_run(
    *, max_pages: int | None, restart: bool, on_progress: ProgressCallback | None, client
) -> FollowerSync:
    from wechat_crm.wechat.client import get_client

    client = client or get_client()
    sync = follower_sync_current(restart=restart)
    pages = 0
    while max_pages is None or pages < max_pages:
        try:
            page = client.followers_page(sync.next_openid)
            openids = page.openids
            stored = created = 0
            for start in range(0, len(openids), BATCHGET_SIZE):
                batch = batchget(openids[start : start + BATCHGET_SIZE], client=client)
                with transaction.atomic():
                    upserted = followers_upsert(infos=batch.infos, now=timezone.now(), client=client)
                stored += upserted.stored
                created += upserted.created
                if on_progress is not None:
                    on_progress(sync.imported + stored, page.total or None)
        except WeChatError as exc:
            sync.status = FollowerSync.Status.FAILED
            sync.error = f"{exc.message} ({exc})"
            sync.save(update_fields=["status", "error", "updated_at"])
            raise FollowerSyncError(sync, exc) from exc
        pages += 1
        next_openid = page.next_openid
        sync.total = page.total or 0
        sync.pages = models.F("pages") + 1
        sync.imported = models.F("imported") + stored
        sync.created = models.F("created") + created
        if not openids or not next_openid:
            sync.status = FollowerSync.Status.DONE
            sync.finished_at = timezone.now()
        sync.next_openid = next_openid if openids else sync.next_openid
        sync.save(
            update_fields=[
                "total",
                "pages",
                "imported",
                "created",
                "status",
                "finished_at",
                "next_openid",
                "updated_at",
            ]
        )
        sync.refresh_from_db(fields=["pages", "imported", "created"])
        if sync.status == FollowerSync.Status.DONE:
            break
    return sync
