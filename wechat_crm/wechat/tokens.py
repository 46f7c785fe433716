"""One access token for every process.

WeChat invalidates a token when a new one is fetched by force, so processes that refresh on their own knock
each other out. Here the token lives in the Django cache (Redis, or the database cache on the embedded
default) and is fetched through `POST cgi-bin/stable_token`:

* `get()` returns the cached token. A few minutes before it expires (WECHAT_TOKEN_REFRESH_MARGIN) one process
  takes the lock and refreshes it while the others keep using the current one; once it has expired,
  everybody waits for the lock and re-checks the cache after getting it, so one fetch serves all.
* `refresh_invalid(bad)` is called when WeChat refused `bad` (40001/40014/42001). If the cache already
  holds another token, somebody refreshed meanwhile and that token is returned without a fetch; otherwise
  one process fetches with `force_refresh`, behind the lock. The client then retries its call once.

Each process also keeps the token in memory until its refresh time, so the hot path costs no cache read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache

from .errors import WeChatError, WeChatPermanent, WeChatTransient, backoff
from .http import Transport, api_base_url, decode, get_transport
from .ratelimit import redis_client

logger = logging.getLogger(__name__)

LOCK_TTL = 60.0  # seconds a crashed refresher can hold the lock (longer than a fetch with its retries)
LOCK_WAIT = 15.0  # seconds a caller without a valid token waits for the refresher


def cache_key(appid: str) -> str:
    return f"wechat:access_token:{appid}"


def lock_key(appid: str) -> str:
    return f"wechat:access_token_lock:{appid}"


class TokenStore:
    def __init__(self, appid: str, secret: str, *, transport: Transport | None = None, base_url: str | None = None):
        self.appid = appid
        self.secret = secret
        self._transport = transport
        self._base_url = base_url
        self._memo: dict[str, Any] | None = None
        self._thread_lock = threading.Lock()

    # --- public ---------------------------------------------------------------------------------
    def get(self) -> str:
        """A valid access token, fetching one (once, for all processes) when needed."""
        now = time.time()
        memo = self._memo
        if memo and now < memo["refresh_at"]:
            return memo["token"]
        entry = self._cache_get()
        if entry and now < entry["refresh_at"]:
            self._memo = entry
            return entry["token"]
        if entry and now < entry["expires_at"] - 1:
            # Inside the refresh margin: one process refreshes, the others go on with the current token.
            with self._locked(blocking=False) as got:
                if got:
                    fresh = self._cache_get()
                    if fresh and time.time() < fresh["refresh_at"]:
                        self._memo = fresh
                        return fresh["token"]
                    try:
                        return self._refresh(force=False, previous=entry)["token"]
                    except WeChatError as exc:
                        logger.warning("Early access-token refresh failed (%s); using the current token", exc)
            return entry["token"]
        # No valid token: wait for whoever refreshes, then re-check.
        with self._thread_lock:
            memo = self._memo
            if memo and time.time() < memo["refresh_at"]:
                return memo["token"]
            with self._locked(blocking=True) as got:
                if not got:
                    logger.warning("Access-token lock not acquired within %ss; fetching without it", LOCK_WAIT)
                fresh = self._cache_get()
                if fresh and time.time() < fresh["expires_at"] - 1:
                    self._memo = fresh
                    return fresh["token"]
                return self._refresh(force=False, previous=fresh or entry)["token"]

    def refresh_invalid(self, bad_token: str) -> str:
        """WeChat refused `bad_token`: return a different token, force-fetching one only if nobody did yet."""
        entry = self._cache_get()
        if entry and entry["token"] != bad_token and time.time() < entry["expires_at"]:
            self._memo = entry
            return entry["token"]
        with self._thread_lock:
            memo = self._memo
            if memo and memo["token"] != bad_token and time.time() < memo["expires_at"]:
                return memo["token"]
            with self._locked(blocking=True):
                fresh = self._cache_get()
                if fresh and fresh["token"] != bad_token and time.time() < fresh["expires_at"]:
                    self._memo = fresh
                    return fresh["token"]
                logger.info("Access token refused by WeChat; fetching a new one")
                return self._refresh(force=True, previous=fresh)["token"]

    def status(self) -> dict[str, Any]:
        """For health checks: whether a shared token is cached and how long it stays valid (no fetch)."""
        entry = self._cache_get()
        if not entry:
            return {"cached": False, "expires_in": 0}
        return {"cached": True, "expires_in": max(0, int(entry["expires_at"] - time.time()))}

    def current(self) -> str | None:
        """The token this process used last (no fetch, no cache read), or None."""
        memo = self._memo
        return memo["token"] if memo else None

    def clear(self) -> None:
        """Forget the token here and in the cache (tests, secret rotation)."""
        self._memo = None
        with contextlib.suppress(Exception):
            cache.delete(cache_key(self.appid))

    def fetch(self, *, force: bool = False) -> dict[str, Any]:
        """POST cgi-bin/stable_token (safe to retry: retried on network errors and 5xx with backoff)."""
        transport = self._transport or get_transport()
        url = (self._base_url or api_base_url()) + "cgi-bin/stable_token"
        body = json.dumps(
            {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret, "force_refresh": force}
        ).encode()
        attempt = 0
        while True:
            try:
                result = decode(transport.request("POST", url, body=body, idempotent=True))
            except WeChatTransient:
                if attempt >= settings.WECHAT_HTTP_MAX_RETRIES:
                    raise
                time.sleep(
                    backoff(attempt, base=settings.WECHAT_HTTP_BACKOFF_BASE, cap=settings.WECHAT_HTTP_BACKOFF_CAP)
                )
                attempt += 1
                continue
            if not isinstance(result, dict) or not result.get("access_token"):
                raise WeChatPermanent(None, "stable_token answered without an access_token")
            return result

    # --- internals ------------------------------------------------------------------------------
    def _refresh(self, *, force: bool, previous: dict[str, Any] | None) -> dict[str, Any]:
        result = self.fetch(force=force)
        now = time.time()
        expires_in = max(1, int(result.get("expires_in") or 7200))
        margin = min(settings.WECHAT_TOKEN_REFRESH_MARGIN, expires_in // 3)
        entry = {
            "token": result["access_token"],
            "expires_at": now + expires_in,
            "refresh_at": now + expires_in - margin,
        }
        if previous and not force and entry["token"] == previous["token"]:
            # stable_token's normal mode hands back the current token while it is valid: keep it until it
            # expires instead of asking again on every call.
            entry["refresh_at"] = entry["expires_at"] - 1
        self._cache_set(entry, expires_in)
        self._memo = entry
        return entry

    def _cache_get(self) -> dict[str, Any] | None:
        try:
            entry = cache.get(cache_key(self.appid))
        except Exception as exc:  # the cache being down must not stop calls to WeChat
            logger.warning("Access-token cache unavailable: %s", exc.__class__.__name__)
            return None
        if isinstance(entry, dict) and {"token", "expires_at", "refresh_at"} <= entry.keys():
            return entry
        return None

    def _cache_set(self, entry: dict[str, Any], timeout: int) -> None:
        try:
            cache.set(cache_key(self.appid), entry, timeout=timeout)
        except Exception as exc:
            logger.warning("Access-token cache unavailable: %s", exc.__class__.__name__)

    @contextlib.contextmanager
    def _locked(self, *, blocking: bool) -> Iterator[bool]:
        """The cross-process refresh lock: a Redis lock on Redis, a cache.add lock on the database cache.
        Yields whether it was acquired (False after LOCK_WAIT, or at once when not blocking)."""
        client = redis_client()
        if client is not None:
            lock = client.lock(lock_key(self.appid), timeout=LOCK_TTL, sleep=0.05, blocking_timeout=LOCK_WAIT)
            try:
                got = lock.acquire(blocking=blocking)
            except Exception as exc:
                logger.warning("Access-token lock unavailable: %s", exc.__class__.__name__)
                got = False
            try:
                yield got
            finally:
                if got:
                    with contextlib.suppress(Exception):
                        lock.release()
            return
        owner = uuid.uuid4().hex
        key = lock_key(self.appid)
        deadline = time.monotonic() + (LOCK_WAIT if blocking else 0)
        got = False
        while True:
            try:
                got = cache.add(key, owner, timeout=LOCK_TTL)
            except Exception as exc:
                logger.warning("Access-token lock unavailable: %s", exc.__class__.__name__)
                break
            if got or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(Exception):
                    if cache.get(key) == owner:
                        cache.delete(key)
