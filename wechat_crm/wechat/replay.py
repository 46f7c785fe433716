"""The callback's replay check: a signed URL seen once (in a proxy log, say) must not carry another body.

Kept apart from inbound.py, which calls it for plain-mode requests.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from .ratelimit import redis_client

logger = logging.getLogger("wechat_crm.wechat.inbound")

REPLAY_KEY_PREFIX = "wechat:callback:nonce:"


class ReplayCheck:
    """Remember each (timestamp, nonce) with a digest of its body for the replay window (the clock skew accepted,
    on both sides). A later request with the same pair must carry the same body (WeChat's retry); any other body is
    a replay of a signed URL, refused by the callback before anything is written.

    Plain mode only: in safe mode msg_signature covers the message (see inbound.request._handle).

    With Redis (REDIS_URL) the check is one command, `SET key digest NX EX window GET` (Redis >= 7.0: it stores
    the digest unless the pair is known, and answers the digest stored before, if any), on a connection of its own
    per thread (Django's cache client builds a new redis.Redis, with its table of reply parsers, for every
    operation, and a pool's checkout polls the socket). The command is sent before the body is parsed and decrypted
    and its answer read after (`replayed()`), so that the round trip overlaps that work instead of adding to it.
    Without Redis (the embedded default) Django's cache keeps the pairs (two operations when a pair comes again).
    With the cache or Redis down the check is skipped: the callback keeps answering, and the signature and timestamp
    checks still hold. `close()` always follows.
    """

    __slots__ = ("connection", "digest", "seen")

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.seen: str | None = None
        self.connection: Any = None  # set while an answer is to be read

    @classmethod
    def send(cls, timestamp: str, nonce: str, body: bytes, *, window: int) -> ReplayCheck:
        """Start the check of a request (the pair is remembered for `window` seconds)."""
        pair = hashlib.sha256(f"{timestamp}\x00{nonce}".encode()).hexdigest()[:40]
        check = cls(hashlib.sha256(body).hexdigest()[:40])
        key = REPLAY_KEY_PREFIX + pair
        connection = None
        try:
            connection = _replay_connection()
            if connection is None:
                from django.core.cache import cache

                if not cache.add(key, check.digest, timeout=window):
                    check.seen = cache.get(key)
                return check
            connection.send_command("SET", key, check.digest, "NX", "EX", window, "GET")
            check.connection = connection
        except Exception:  # the cache is down: see the docstring
            if connection is not None:
                connection.disconnect()  # reconnected by the next command
            check._skip()
        return check

    def replayed(self) -> bool:
        """Whether the pair came before with another body (the caller refuses the request)."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            try:
                seen = connection.read_response()
            except Exception:
                connection.disconnect()
                self._skip()
            else:
                self.seen = seen.decode() if isinstance(seen, bytes) else seen
        return self.seen is not None and self.seen != self.digest

    def close(self) -> None:
        """Read the answer if it was not (the body was refused), so that the connection is ready for the next one."""
        if self.connection is not None:
            self.replayed()

    def _skip(self) -> None:
        logger.warning("wechat callback: replay check skipped, the cache is unavailable")
        self.seen = None


_replay_local = threading.local()


def _replay_connection() -> Any:
    """This thread's connection to settings.REDIS_URL for the replay check (None without Redis). A new client (a new
    process after a fork, another REDIS_URL) gets a new connection."""
    client = redis_client()
    if client is None:
        return None
    held = getattr(_replay_local, "held", None)
    if held is None or held[0] is not client:
        pool = client.connection_pool
        held = (client, pool.connection_class(**pool.connection_kwargs))
        _replay_local.held = held
    return held[1]
