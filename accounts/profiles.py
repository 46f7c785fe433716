"""Services that read subscribers' profiles from WeChat: the profile fetch after a follow.

Profile fetch: a follow leaves the subscriber's profile pending (`profile_fetched_at` empty or older than the last
follow). `profiles_fetch_pending()` claims up to 100 pending subscribers (`select_for_update(skip_locked=True)` in a
short transaction that writes `profile_claimed_until`, so two workers never fetch the same ones and no row stays
locked while WeChat answers: the callback's updates never wait for WeChat), asks WeChat's batch profile call (the
client's users_info) for them, stores what it answered and loops until nothing is pending. A WeChat error releases
the claim: the subscribers stay pending for the task's retry.

The follower sync (accounts.followers) stores what it imports with profiles_apply too.

These services live beside services.py (the callback's hot path) rather than in it to keep each file readable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from django.db import models, transaction
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from wechat_crm.db import rows_update
from wechat_crm.wechat.errors import WeChatNotFollowing, WeChatPermanent

from .kinds import InteractionKind
from .models import Interaction, Subscriber, Tag
from .signals import profiles_fetched

logger = logging.getLogger(__name__)

BATCHGET_SIZE = 100  # WeChat's limit for one batch profile call
INVALID_OPENID = 40003


def _client():
    from wechat_crm.wechat.client import get_client

    return get_client()


def profile_pending_q() -> models.Q:
    """Followers whose profile was never fetched, or predates their last follow (matches the partial index)."""
    return models.Q(is_following=True) & (
        models.Q(profile_fetched_at__isnull=True) | models.Q(profile_fetched_at__lt=models.F("subscribed_at"))
    )


# --- WeChat's profile JSON -> our columns -------------------------------------------------------------------------

PROFILE_FIELDS = (
    "unionid",
    "nickname",
    "remark",
    "language",
    "sex",
    "city",
    "province",
    "country",
    "headimgurl",
    "subscribe_scene",
    "qr_scene_str",
)


def _text(value: Any, max_length: int) -> str:
    return str(value)[:max_length] if value not in (None, "") else ""


def profile_values(info: dict[str, Any]) -> dict[str, Any]:
    """Every profile column of a Subscriber from one user_info item (WeChat's answer is authoritative: a field it
    no longer sends, like nickname, becomes empty)."""
    values: dict[str, Any] = {"unionid": _text(info.get("unionid"), 64) or None}
    for name, length in (
        ("nickname", 100),
        ("remark", 100),
        ("language", 32),
        ("city", 64),
        ("province", 64),
        ("country", 64),
        ("headimgurl", 512),
        ("subscribe_scene", 64),
        ("qr_scene_str", 128),
    ):
        values[name] = _text(info.get(name), length)
    try:
        sex = int(info.get("sex") or 0)
    except (TypeError, ValueError):
        sex = 0
    values["sex"] = sex if sex in (0, 1, 2) else 0
    return values


def subscribe_time(info: dict[str, Any]) -> datetime | None:
    try:
        stamp = int(info.get("subscribe_time") or 0)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(stamp, tz=UTC) if stamp > 0 else None


# --- Tags from tagid_list ---------------------------------------------------------------------------------------


def tags_for_wechat_ids(wechat_ids: Iterable[int], *, client=None) -> dict[int, int]:
    """{WeChat tag id: local Tag id} for the given ids, creating local tags for WeChat tags we do not know yet
    (one call for WeChat's tag list when some are unknown)."""
    wanted = {int(i) for i in wechat_ids}
    if not wanted:
        return {}
    known = dict(Tag.objects.filter(wechat_tag_id__in=wanted).values_list("wechat_tag_id", "id"))
    missing = wanted - set(known)
    if missing:
        from .tagging import tags_link_wechat

        remote = [t for t in (client or _client()).tags_list() if int(t["id"]) in missing]
        known.update(tags_link_wechat(remote))
    return known


def _subscriber_tag_rows(pairs: Iterable[tuple[int, int]]) -> int:
    """Add (subscriber id, tag id) memberships, ignoring the ones that exist."""
    through = Subscriber.tags.through
    rows = [through(subscriber_id=s, tag_id=t) for s, t in pairs]
    if rows:
        through.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- Profile fetch ----------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What one batch did: profiles stored, subscribers found not following, openids WeChat does not know."""

    fetched: int = 0
    not_following: int = 0
    invalid: list[str] = field(default_factory=list)


class ProfileBatch(NamedTuple):
    """WeChat's profiles of a batch of openids, and the openids it does not know."""

    infos: list[dict[str, Any]]
    invalid: list[str]


def batchget(openids: Sequence[str], *, client=None) -> ProfileBatch:
    """WeChat's profiles of `openids` (at most 100) and the openids it does not know (40003).

    batchget refuses the whole batch for one unknown openid: the batch is then split in halves until the unknown
    ones are isolated. Other errors are raised (typed WeChatError).
    """
    client = client or _client()
    if not openids:
        return ProfileBatch([], [])
    if len(openids) > BATCHGET_SIZE:
        raise ValueError(f"batchget takes at most {BATCHGET_SIZE} openids")
    try:
        return ProfileBatch(client.users_info(openids), [])
    except WeChatNotFollowing:
        if len(openids) == 1:
            return ProfileBatch([{"openid": openids[0], "subscribe": 0}], [])
        raise
    except WeChatPermanent as exc:
        if exc.errcode != INVALID_OPENID:
            raise
        if len(openids) == 1:
            return ProfileBatch([], list(openids))
    middle = len(openids) // 2
    left = batchget(openids[:middle], client=client)
    right = batchget(openids[middle:], client=client)
    return ProfileBatch(left.infos + right.infos, left.invalid + right.invalid)


def profiles_apply(
    *,
    subscribers: Sequence[Subscriber],
    infos: Sequence[dict[str, Any]],
    invalid: Sequence[str],
    now: datetime,
    imported: bool = False,
    client=None,
) -> BatchResult:
    """Store WeChat's answers for `subscribers` (rows loaded with at least id, openid, subscribed_at) and release
    their claim. The profile fetch writes only profile columns (the callback owns the follow state); the follower
    import (`imported=True`) also marks them following."""
    result = BatchResult(invalid=list(invalid))
    by_openid = {s.openid: s for s in subscribers}
    tag_ids = tags_for_wechat_ids({t for i in infos for t in (i.get("tagid_list") or [])}, client=client)
    profiled, gone, memberships, undated = [], [], [], []
    for info in infos:
        subscriber = by_openid.get(info.get("openid"))
        if subscriber is None:
            continue
        # Never older than the follow: a follow stamped ahead of our clock (WeChat's CreateTime) must not stay pending.
        subscriber.profile_fetched_at = max(now, subscriber.subscribed_at or now)
        subscriber.profile_claimed_until = None
        subscriber.updated_at = now
        if not info.get("subscribe"):
            gone.append(subscriber.pk)
            result.not_following += 1
            continue
        for name, value in profile_values(info).items():
            setattr(subscriber, name, value)
        subscriber.is_following = True
        if subscriber.subscribed_at is None:  # known from a message only: WeChat knows when they followed
            subscriber.subscribed_at = subscribe_time(info) or now
            undated.append(subscriber)
        memberships += [(subscriber.pk, tag_ids[int(t)]) for t in info.get("tagid_list") or [] if int(t) in tag_ids]
        profiled.append(subscriber)
        result.fetched += 1
    fields = [*PROFILE_FIELDS, "profile_fetched_at", "profile_claimed_until", "updated_at"]
    rows_update(profiled, [*fields, "is_following", "subscribed_at"] if imported else fields)
    if undated and not imported:
        rows_update(undated, ["subscribed_at"])
    if gone:
        # WeChat says they no longer follow (an unsubscribe we missed): mark them, keep their history.
        Subscriber.objects.filter(pk__in=gone).update(profile_fetched_at=now, profile_claimed_until=None)
        Subscriber.objects.filter(pk__in=gone, is_following=True).update(
            is_following=False, unsubscribed_at=now, updated_at=now
        )
    if result.invalid:
        # Unknown to WeChat (another account's openid?): leave them as they are, but stop asking.
        Subscriber.objects.filter(openid__in=result.invalid).update(
            profile_fetched_at=Greatest(models.Value(now), Coalesce("subscribed_at", models.Value(now))),
            profile_claimed_until=None,
        )
        logger.warning("profile fetch: %d openids unknown to WeChat", len(result.invalid))
    _subscriber_tag_rows(memberships)
    return result


CLAIM_SECONDS = 300  # a worker that died mid-fetch leaves its claim; another takes the rows after this


def profiles_claim(*, limit: int = BATCHGET_SIZE, now: datetime) -> list[Subscriber]:
    """Claim up to `limit` pending profiles for this worker, in a short transaction: the rows are locked
    (select_for_update with skip_locked, so two workers never take the same ones) only while the claim is written,
    never during the call to WeChat, so the callback's updates of these subscribers never wait for WeChat."""
    with transaction.atomic():
        subscribers = list(
            Subscriber.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(profile_pending_q())
            .filter(models.Q(profile_claimed_until__isnull=True) | models.Q(profile_claimed_until__lt=now))
            .order_by("id")
            .only("id", "openid", "subscribed_at", "updated_at")[:limit]
        )
        if subscribers:
            Subscriber.objects.filter(pk__in=[s.pk for s in subscribers]).update(
                profile_claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
            )
    return subscribers


def profiles_fetch_batch(*, limit: int = BATCHGET_SIZE, client=None) -> BatchResult | None:
    """Fetch one batch of pending profiles. None when nothing is pending (or everything pending is claimed by
    another worker). A WeChatError releases the claim and leaves the rows pending for a retry."""
    subscribers = profiles_claim(limit=limit, now=timezone.now())
    if not subscribers:
        return None
    try:
        batch = batchget([s.openid for s in subscribers], client=client)
    except BaseException:
        Subscriber.objects.filter(pk__in=[s.pk for s in subscribers]).update(profile_claimed_until=None)
        raise
    with transaction.atomic():
        result = profiles_apply(
            subscribers=subscribers, infos=batch.infos, invalid=batch.invalid, now=timezone.now(), client=client
        )
    transaction.on_commit(lambda: _announce([s.pk for s in subscribers]))
    return result


def _announce(subscriber_ids: list[int]) -> None:
    """profiles_fetched, after commit; a receiver's failure is logged and never fails the fetch (it is stored)."""
    for receiver, outcome in profiles_fetched.send_robust(sender=Subscriber, subscriber_ids=subscriber_ids):
        if isinstance(outcome, Exception):
            logger.error("profiles_fetched: %s failed", receiver, exc_info=outcome)


class FetchRun(NamedTuple):
    handled: int  # subscribers handled
    more: bool  # stopped before nothing was pending: yielded to waiting follows, or at max_batches


def profiles_fetch_pending(*, max_batches: int = 1000, client=None) -> int:
    """Fetch pending profiles batch after batch until none is pending. Returns the number of subscribers handled.

    Raises WeChatError from the batch that failed (the batches before it are kept).
    """
    return profiles_fetch_run(max_batches=max_batches, client=client).handled


def profiles_fetch_run(*, max_batches: int = 1000, client=None, yield_to_follows: bool = False) -> FetchRun:
    """`profiles_fetch_pending`, and with `yield_to_follows` it stops after a batch while follows wait for their
    follow-ups (`follows_waiting`): in a burst of follows a fetch would otherwise hold a worker process for as long
    as the callback creates subscribers, and the follows' welcomes, which WeChat allows only in the minute after the
    follow, would wait behind it. The caller schedules the rest."""
    handled = 0
    for _batch in range(max_batches):
        result = profiles_fetch_batch(client=client)
        if result is None:
            return FetchRun(handled, more=False)
        handled += result.fetched + result.not_following + len(result.invalid)
        if yield_to_follows and follows_waiting():
            return FetchRun(handled, more=True)
    return FetchRun(handled, more=True)


FOLLOWS_WAITING_SCAN = 500


def follows_waiting() -> bool:
    """A follow among the oldest pending interactions (at most FOLLOWS_WAITING_SCAN, the partial index of pending
    rows) waits for its follow-ups. One query."""
    oldest = Interaction.objects.filter(processed_at__isnull=True).order_by("received_at")[:FOLLOWS_WAITING_SCAN]
    return Interaction.objects.filter(pk__in=oldest.values("pk"), kind=InteractionKind.SUBSCRIBE).exists()


def profile_fetch_schedule(*, delay: float | None = None) -> bool:
    """Enqueue the profile fetch after `delay` seconds unless one is already scheduled in that window, so the
    follows of the next second share one batchget. Returns True when a task was enqueued."""
    from django.conf import settings
    from django.core.cache import cache

    from .tasks import profiles_fetch_pending_task

    delay = settings.PROFILE_FETCH_DELAY if delay is None else delay
    try:
        if delay > 0 and not cache.add("accounts:profile-fetch-scheduled", 1, timeout=max(1, int(delay))):
            return False  # a task runs at the end of this window and takes every row pending by then
        profiles_fetch_pending_task.apply_async(countdown=delay, retry=False)
    except Exception:
        logger.warning("could not schedule the profile fetch; the periodic sweep will run it", exc_info=True)
        return False
    return True
