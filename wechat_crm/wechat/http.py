"""The HTTP transport to WeChat: one kept-alive urllib3 pool per process, timeouts on every request, and
network failures mapped to `WeChatTransient` (surely not sent) or `WeChatOutcomeUnknown` (maybe sent).

Everything that goes to WeChat's API, wechatpy's API groups included, goes through `Transport.request`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import urllib3
from django.conf import settings
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from .errors import WeChatOutcomeUnknown, WeChatPermanent, WeChatTransient, backoff, error_from_response

logger = logging.getLogger(__name__)

# Hosts of WeChat's API that wechatpy (or anyone) may hard-code; all are rewritten to WECHAT_API_BASE_URL.
WECHAT_HOSTS = (
    "https://api.weixin.qq.com/",
    "https://api2.weixin.qq.com/",
    "https://sh.api.weixin.qq.com/",
    "https://sz.api.weixin.qq.com/",
    "https://hk.api.weixin.qq.com/",
    "https://file.api.weixin.qq.com/",
    "https://mp.weixin.qq.com/",
)


def api_base_url() -> str:
    """settings.WECHAT_API_BASE_URL, read at call time, always ending in "/"."""
    base = settings.WECHAT_API_BASE_URL
    return base if base.endswith("/") else base + "/"


def retry_delay(attempt: int) -> float:
    """The pause before retry number `attempt` (from 0) of a safe request: full-jitter exponential backoff."""
    return backoff(attempt, base=settings.WECHAT_HTTP_BACKOFF_BASE, cap=settings.WECHAT_HTTP_BACKOFF_CAP)


def rewrite_url(url: str, base: str | None = None) -> str:
    """Point a URL on one of WeChat's hosts at our configured base URL (the fake server in tests)."""
    base = base or api_base_url()
    for host in WECHAT_HOSTS:
        if url.startswith(host):
            return base + url[len(host) :]
        if url.startswith(host.replace("https://", "http://", 1)):
            return base + url[len(host) - 1 :]
    return url


@dataclass
class RawResponse:
    """A non-JSON answer (an image, a file), shaped like the bits of `requests.Response` wechatpy callers use."""

    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.content)


class Transport:
    """A thread-safe, kept-alive HTTP client for WeChat's JSON API."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, pool_size: int):
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # retries=False: urllib3 never resends on its own; the caller decides what is safe to retry.
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=pool_size, block=False, retries=False, timeout=self.timeout
        )
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}  # origin -> the manager's pool for it

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        idempotent: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request. Raises WeChatTransient / WeChatOutcomeUnknown on network errors and 5xx,
        WeChatPermanent on other non-2xx statuses; returns the response otherwise."""
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{_query(params)}"
        kwargs: dict[str, Any] = {"redirect": False, "preload_content": True}
        if timeout is not None:
            kwargs["timeout"] = (
                urllib3.Timeout(connect=timeout[0], read=timeout[1])
                if isinstance(timeout, tuple)
                else urllib3.Timeout(connect=min(timeout, self.timeout.connect_timeout or timeout), read=timeout)
            )
        if fields is not None:
            kwargs["fields"] = fields
        else:
            kwargs["body"] = body
            if body is not None:
                headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            direct = self._pool_for(url) if fields is None else None
            if direct is not None:  # what PoolManager.request does for a plain body, without finding the pool again
                pool, path = direct
                response = pool.urlopen(method.upper(), path, headers=headers, assert_same_host=False, **kwargs)
            else:
                response = self.pool.request(method.upper(), url, headers=headers, **kwargs)
        except (ConnectTimeoutError, NewConnectionError, NameResolutionError, ClosedPoolError) as exc:
            # Failed while connecting (or before: a pool the manager closed): nothing reached WeChat.
            raise WeChatTransient(None, f"connect failed: {exc.__class__.__name__}") from exc
        except (ReadTimeoutError, ProtocolError, HTTPError, OSError) as exc:
            # The request may have been sent: only a request that is safe to repeat may be retried.
            msg = f"{exc.__class__.__name__} after sending"
            if idempotent:
                raise WeChatTransient(None, msg) from exc
            raise WeChatOutcomeUnknown(None, msg) from exc
        status = response.status
        if status >= 500:
            if status == 504 and not idempotent:
                # A gateway timeout: WeChat may have handled it.
                raise WeChatOutcomeUnknown(None, "HTTP 504")
            raise WeChatTransient(None, f"HTTP {status}")
        if status >= 400 or 300 <= status < 400:
            raise WeChatPermanent(None, f"HTTP {status}")
        return response

    def _pool_for(self, url: str) -> tuple[urllib3.HTTPConnectionPool, str] | None:
        """The manager's connection pool for the URL's origin (remembered: a page sends hundreds of messages to one
        host) and the URL's path and query; None for a URL without an origin and a path."""
        scheme_end = url.find("://")
        path_at = url.find("/", scheme_end + 3) if scheme_end > 0 else -1
        if path_at < 0:
            return None
        origin = url[:path_at]
        pool = self._pools.get(origin)
        if pool is None or pool.pool is None:  # new, or closed by the manager when it made room for another host
            pool = self._pools[origin] = self.pool.connection_from_url(origin)
        return pool, url[path_at:]


def decode(response: urllib3.BaseHTTPResponse) -> dict[str, Any] | RawResponse:
    """WeChat's JSON as a dict, raising the typed error for a non-zero errcode; a RawResponse if not JSON."""
    data = response.data
    if data[:1] == b"{" or _textual(response.headers.get("Content-Type", "")):  # the header only when needed
        try:
            result = json.loads(data.decode("utf-8", "ignore"), strict=False)
        except ValueError:
            result = None
        if isinstance(result, dict):
            if "errcode" in result:
                try:
                    errcode = int(result["errcode"])
                except (TypeError, ValueError):
                    errcode = -2
                if errcode != 0:
                    raise error_from_response(errcode, str(result.get("errmsg", "")))
            return result
    return RawResponse(response.status, data, dict(response.headers))


def _textual(content_type: str) -> bool:
    return "json" in content_type or "text/plain" in content_type


@functools.lru_cache(maxsize=64)
def _query_of(items: tuple) -> str:
    return urlencode(items)


def _query(params: dict[str, Any]) -> str:
    """`urlencode(params)`, remembered for the few parameter sets sent again and again (a page's access token)."""
    try:
        return _query_of(tuple(params.items()))
    except TypeError:  # a value that is not hashable (a list)
        return urlencode(params)


_transports: dict[tuple, Transport] = {}
_transports_lock = threading.Lock()


def get_transport() -> Transport:
    """The process's transport (a fresh one after fork: sockets are never shared between processes)."""
    key = (
        os.getpid(),
        settings.WECHAT_HTTP_CONNECT_TIMEOUT,
        settings.WECHAT_HTTP_TIMEOUT,
        settings.WECHAT_HTTP_POOL_SIZE,
    )
    transport = _transports.get(key)
    if transport is None:
        with _transports_lock:
            transport = _transports.get(key)
            if transport is None:
                transport = Transport(
                    connect_timeout=settings.WECHAT_HTTP_CONNECT_TIMEOUT,
                    read_timeout=settings.WECHAT_HTTP_TIMEOUT,
                    pool_size=settings.WECHAT_HTTP_POOL_SIZE,
                )
                _transports.clear()
                _transports[key] = transport
    return transport
