"""Outbound rate limit per WeChat API group, shared by every worker.

A token bucket per group ("template", "custom", "mass", "user", "default") lives in Redis and is updated by
one atomic Lua script, so all processes draw from the same budget, and a big push (group "template") cannot
use up the budget of replies (group "custom"). A caller that must wait reserves its slot and sleeps (one
round trip per request); one that would wait longer than WECHAT_RATE_LIMIT_MAX_WAIT gets
`WeChatLocalRateLimited` with the delay to retry after, and nothing is reserved.

Without Redis (REDIS_URL empty, the embedded default), or while Redis is unreachable, each process uses its
own bucket with the same settings: the limit then holds per process, not across processes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import NamedTuple

import redis
from django.conf import settings

from .errors import WeChatLocalRateLimited

logger = logging.getLogger(__name__)

GROUPS = ("template", "custom", "notice", "mass", "user", "default")

# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, tokens wanted, longest wait allowed (s).
# Returns the seconds to wait as a string (>= 0: granted after that wait; < 0: refused, retry after -value).
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens < wanted then
  wait = (wanted - tokens) / rate
end
if wait > max_wait then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
  return tostring(-wait)
end
tokens = tokens - wanted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + max_wait) * 1000) + 1000)
return tostring(wait)
"""

_redis_clients: dict[tuple, redis.Redis] = {}
_redis_lock = threading.Lock()


def redis_client() -> redis.Redis | None:
    """A Redis client for settings.REDIS_URL (one pool per process), or None when REDIS_URL is empty."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    key = (os.getpid(), url)
    client = _redis_clients.get(key)
    if client is None:
        with _redis_lock:
            client = _redis_clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1, health_check_interval=30)
                _redis_clients[key] = client
    return client


class Limits(NamedTuple):
    rate: float  # per second; 0 means unlimited
    burst: int


def group_limits(group: str) -> Limits:
    """The limits configured for `group` (falls back on "default")."""
    limits = settings.WECHAT_RATE_LIMITS
    rate, burst = limits.get(group) or limits.get("default") or (0.0, 0)
    return Limits(float(rate), max(1, int(burst)))


class _LocalBucket:
    """The same token bucket, per process, for when Redis is not there."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: float | None = None
        self.ts = 0.0

    def take(self, rate: float, burst: int, wanted: int, max_wait: float) -> float:
        with self.lock:
            now = time.monotonic()
            if self.tokens is None:
                self.tokens, self.ts = float(burst), now
            if now > self.ts:
                self.tokens = min(float(burst), self.tokens + (now - self.ts) * rate)
                self.ts = now
            wait = (wanted - self.tokens) / rate if self.tokens < wanted else 0.0
            if wait > max_wait:
                return -wait
            self.tokens -= wanted
            return wait


_local_buckets: dict[tuple, _LocalBucket] = {}
_local_lock = threading.Lock()
_warned_local = False
_redis_down_until = 0.0  # after a Redis error, use the local bucket for a few seconds instead of waiting on Redis


def _local_bucket(name: str) -> _LocalBucket:
    key = (os.getpid(), name)
    bucket = _local_buckets.get(key)
    if bucket is None:
        with _local_lock:
            bucket = _local_buckets.setdefault(key, _LocalBucket())
    return bucket


def _bucket_key(group: str) -> str:
    return f"wechat:ratelimit:{settings.WECHAT_APP_ID}:{group}"


def reserve(group: str, tokens: int = 1, *, max_wait: float | None = None) -> float:
    """Reserve `tokens` slots of `group`; return the seconds the caller must wait before sending.

    Raises WeChatLocalRateLimited (with retry_after) when the wait would exceed `max_wait`.
    """
    global _warned_local, _redis_down_until
    rate, burst = group_limits(group)
    if rate <= 0:
        return 0.0
    if max_wait is None:
        max_wait = settings.WECHAT_RATE_LIMIT_MAX_WAIT
    tokens = min(tokens, burst)
    key = _bucket_key(group)
    client = redis_client()
    wait: float | None = None
    if client is not None and time.monotonic() >= _redis_down_until:
        try:
            wait = float(client.eval(_BUCKET_SCRIPT, 1, key, rate, burst, tokens, max_wait))
        except redis.RedisError as exc:
            _redis_down_until = time.monotonic() + 5.0
            logger.warning("Rate limiter: Redis unavailable (%s); using a per-process bucket", exc.__class__.__name__)
    elif client is None and not _warned_local:
        _warned_local = True
        logger.info("Rate limiter: REDIS_URL is empty; the outbound rate limit holds per process only")
    if wait is None:
        wait = _local_bucket(key).take(rate, burst, tokens, max_wait)
    if wait < 0:
        raise WeChatLocalRateLimited(None, f"rate limit of group {group}", retry_after=-wait)
    return wait


def acquire(group: str, tokens: int = 1, *, max_wait: float | None = None) -> None:
    """Block until `tokens` requests of `group` may be sent (at most `max_wait` seconds), or raise
    WeChatLocalRateLimited without waiting."""
    wait = reserve(group, tokens, max_wait=max_wait)
    if wait > 0:
        time.sleep(wait)


def group_for(endpoint: str) -> str:
    """The rate-limit group of an API path relative to the base URL, e.g. "cgi-bin/message/custom/send"."""
    path = endpoint.split("?", 1)[0]
    if path.startswith("cgi-bin/"):
        path = path[len("cgi-bin/") :]
    if path.startswith("message/template/"):
        return "template"
    if path.startswith("message/custom/"):
        return "custom"
    if path.startswith("message/subscribe/"):
        return "notice"
    if path.startswith("message/mass/"):
        return "mass"
    if path.startswith(("user/", "tags/")):
        return "user"
    return "default"
