"""Reads of channels that are more than a get by key."""

from __future__ import annotations

import threading
import time

from django.db.models import QuerySet

from .models import Channel

# Active channels' welcome replies by scene, cached in the process for a few seconds: the callback asks for every
# follow or scan with a scene, and must stay at one indexed query at most.
WELCOME_CACHE_SECONDS = 5.0
_WELCOME_CACHE_MAX = 10_000
_welcome_cache: dict[str, tuple[float, str]] = {}
_welcome_lock = threading.Lock()


def channel_welcome_for_scene(*, scene: str) -> str:
    """The welcome reply of the active channel with this scene ("" for none or an unknown scene)."""
    if not scene:
        return ""
    now = time.monotonic()
    cached = _welcome_cache.get(scene)
    if cached is not None and cached[0] > now:
        return cached[1]
    welcome = (
        Channel.objects.filter(scene_str=scene, is_active=True).values_list("welcome_reply", flat=True).first() or ""
    )
    with _welcome_lock:
        if len(_welcome_cache) >= _WELCOME_CACHE_MAX:
            _welcome_cache.clear()
        _welcome_cache[scene] = (now + WELCOME_CACHE_SECONDS, welcome)
    return welcome


def channel_welcome_cache_clear() -> None:
    with _welcome_lock:
        _welcome_cache.clear()


def channels_list() -> QuerySet[Channel]:
    """Channels with `follow_count` (follows through the channel) and `first_touch_count` (subscribers it brought
    first, still following or not), read from the channels' counters (campaigns.tallies): a few rows a channel,
    however many subscribers it brought."""
    from .tallies import channels_counted

    return channels_counted().order_by("-created_at", "-id")
