"""The client's transport: wechatpy's client with its requests, token handling and retries replaced by ours (see
the package's docstring), and `send_many`, which sends a page of messages over the kept-alive pool.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from wechatpy.client import WeChatClient as _WechatpyClient
from wechatpy.client.api import WeChatMedia, WeChatQRCode

from .. import ratelimit
from ..errors import (
    Classification,
    Outcome,
    WeChatError,
    WeChatInvalidToken,
    WeChatPermanent,
    WeChatTransient,
    backoff,
    classify,
)
from ..http import RawResponse, Transport, api_base_url, decode, get_transport, rewrite_url
from ..tokens import TokenStore

logger = logging.getLogger(__name__)

# POST endpoints (relative to the base URL) that are safe to repeat: reads, and writes that set a state.
# Every other POST is treated as a send that must not be repeated once it may have reached WeChat.
SAFE_POST_ENDPOINTS = frozenset(
    {
        "cgi-bin/stable_token",
        "cgi-bin/user/info/batchget",
        "cgi-bin/user/info/updateremark",
        "cgi-bin/tags/members/batchtagging",
        "cgi-bin/tags/members/batchuntagging",
        "cgi-bin/tags/getidlist",
        "cgi-bin/tags/update",
        "cgi-bin/tags/delete",
        "cgi-bin/user/tag/get",
        "cgi-bin/menu/create",
        "cgi-bin/menu/delete",
        "cgi-bin/qrcode/create",
        "cgi-bin/message/mass/get",
        "cgi-bin/message/template/get_all_private_template",
        "wxaapi/newtmpl/deltemplate",
    }
)


def _qrcode_url(ticket: str | dict) -> str:
    if isinstance(ticket, dict):
        ticket = ticket["ticket"]
    return f"{api_base_url()}cgi-bin/showqrcode?ticket={quote(ticket)}"


class QRCodeAPI(WeChatQRCode):
    """wechatpy's QR code group, with showqrcode on our base URL instead of mp.weixin.qq.com."""

    def show(self, ticket):
        if isinstance(ticket, dict):
            ticket = ticket["ticket"]
        return self._client.get(_qrcode_url(ticket), params={}, skip_token=True)

    @classmethod
    def get_url(cls, ticket):
        return _qrcode_url(ticket)


class MediaAPI(WeChatMedia):
    def get_url(self, media_id):
        return f"{api_base_url()}cgi-bin/media/get?access_token={self.access_token}&media_id={quote(media_id)}"


@dataclass(frozen=True)
class SendResult:
    """The result of one message of a page: WeChat's msgid, or the error and what to do about it."""

    msgid: int | None
    error: WeChatError | None
    classification: Classification

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def outcome(self) -> Outcome:
        return self.classification.outcome


class BaseClient(_WechatpyClient):
    """wechatpy's client on our transport: `call()` is every request; `send_many()` sends a page."""

    qrcode = QRCodeAPI()
    media = MediaAPI()

    def __init__(
        self,
        appid: str | None = None,
        secret: str | None = None,
        *,
        base_url: str | None = None,
        transport: Transport | None = None,
        token_store: TokenStore | None = None,
        max_retries: int | None = None,
        threads: int = 4,
    ):
        appid = appid or settings.WECHAT_APP_ID
        secret = secret or settings.WECHAT_APP_SECRET
        super().__init__(appid, secret, auto_retry=False)
        self._http = None  # wechatpy's requests.Session is never used: all traffic goes through the transport
        self.base_url = base_url or api_base_url()
        self.API_BASE_URL = self.base_url + "cgi-bin/"
        self.transport = transport or get_transport()
        self.tokens = token_store or TokenStore(appid, secret, transport=self.transport, base_url=self.base_url)
        self.max_retries = settings.WECHAT_HTTP_MAX_RETRIES if max_retries is None else max_retries
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # --- wechatpy's token interface -------------------------------------------------------------
    @property
    def access_token(self) -> str:
        return self.tokens.get()

    def fetch_access_token(self) -> dict[str, Any]:
        """wechatpy's hook; our token comes from the shared store (stable_token), never cgi-bin/token."""
        token = self.tokens.get()
        return {"access_token": token}

    # --- every request --------------------------------------------------------------------------
    def _request(self, method, url_or_endpoint, **kwargs):
        """wechatpy's single request hook, re-implemented on our transport."""
        api_base = kwargs.pop("api_base_url", None) or self.API_BASE_URL
        absolute = url_or_endpoint.startswith(("http://", "https://"))
        url = rewrite_url(url_or_endpoint if absolute else api_base + url_or_endpoint, self.base_url)
        params = dict(kwargs.pop("params", None) or {})
        data = kwargs.pop("data", None)
        files = kwargs.pop("files", None)
        timeout = kwargs.pop("timeout", None)
        result_processor = kwargs.pop("result_processor", None)
        idempotent = kwargs.pop("idempotent", None)
        skip_token = kwargs.pop("skip_token", False)
        body: bytes | None
        if isinstance(data, (dict, list)):
            body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        elif isinstance(data, str):
            body = data.encode("utf-8")
        else:
            body = data
        fields = _files_to_fields(files, data) if files else None
        endpoint = url[len(self.base_url) :] if url.startswith(self.base_url) else url
        endpoint = endpoint.split("?", 1)[0]
        if idempotent is None:
            idempotent = method.lower() == "get" or endpoint in SAFE_POST_ENDPOINTS or _has_clientmsgid(data)
        result = self.call(
            method,
            url,
            group=ratelimit.group_for(endpoint),
            params=params,
            body=None if fields else body,
            fields=fields,
            timeout=timeout,
            idempotent=idempotent,
            with_token=not skip_token and "access_token" not in params,
        )
        if result_processor is not None and isinstance(result, dict):
            return result_processor(result)
        return result

    def call(
        self,
        method: str,
        url: str,
        *,
        group: str = "default",
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        fields: dict[str, Any] | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        with_token: bool = True,
        token: str | None = None,
        gate: Callable[[], None] | None = None,
    ) -> dict[str, Any] | RawResponse:
        """One call to WeChat with the rate limit, the token, one refresh on a refused token and retries of
        what is safe to retry. Raises a WeChatError."""
        params = dict(params or {})
        if with_token:
            token = token or self.tokens.get()
        refreshed = False
        attempt = 0
        while True:
            if gate is not None:
                gate()
            else:
                ratelimit.acquire(group)
            if with_token:
                params["access_token"] = token
            try:
                response = self.transport.request(
                    method, url, params=params, body=body, fields=fields, timeout=timeout, idempotent=idempotent
                )
                return decode(response)
            except WeChatInvalidToken:
                if not with_token or refreshed:
                    raise
                token = self.tokens.refresh_invalid(token)
                refreshed = True
            except WeChatTransient:
                # Transient means the request surely was not handled (or is safe to repeat).
                if attempt >= self.max_retries:
                    raise
                time.sleep(
                    backoff(attempt, base=settings.WECHAT_HTTP_BACKOFF_BASE, cap=settings.WECHAT_HTTP_BACKOFF_CAP)
                )
                attempt += 1

    # --- the hot path: pages of messages ---------------------------------------------------------
    def send_many(
        self,
        endpoint: str,
        payloads: Sequence[dict[str, Any]],
        *,
        group: str,
        threads: int | None = None,
        before_send: Callable[[int], None] | None = None,
        after_send: Callable[[int, SendResult], None] | None = None,
    ) -> list[SendResult]:
        """POST each payload to `endpoint` (e.g. "cgi-bin/message/template/send") over the kept-alive pool,
        with up to `threads` in flight; one SendResult per payload, in order. Never raises for one message.

        `before_send(index)` runs just before a message may leave (so a caller can record that it started); when it
        raises, that message is not sent and comes back as a transient error, to retry later. `after_send(index,
        result)` runs as soon as a message's result is known (its errors are logged and ignored)."""
        url = self.base_url + endpoint
        idempotent = endpoint in SAFE_POST_ENDPOINTS
        try:
            token = self.tokens.get()
        except WeChatError as exc:
            return [SendResult(None, exc, classify(exc)) for _ in payloads]
        state = {"token": token}
        gate = _PageGate(group, len(payloads))

        def send_one(index: int, payload: dict[str, Any]) -> SendResult:
            result = _send_one(index, payload)
            if after_send is not None:
                try:
                    after_send(index, result)
                except Exception:
                    logger.warning("after_send of message %s failed", index, exc_info=True)
            return result

        def _send_one(index: int, payload: dict[str, Any]) -> SendResult:
            if before_send is not None:
                try:
                    before_send(index)
                except Exception as exc:  # not sent: nothing is lost by trying again later
                    logger.warning("message %s of the page not sent: %r", index, exc)
                    error = WeChatTransient(None, f"not started: {exc!r}", retry_after=10.0)
                    return SendResult(None, error, classify(error))
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            current = state["token"]
            try:
                result = self.call(
                    "POST",
                    url,
                    group=group,
                    body=body,
                    idempotent=idempotent or _has_clientmsgid(payload),
                    token=current,
                    gate=gate,
                )
            except WeChatError as exc:
                return SendResult(None, exc, classify(exc))
            except Exception as exc:  # a bug must not lose the rest of the page
                return SendResult(None, WeChatPermanent(None, repr(exc)), classify(exc))
            finally:
                # Another thread may have refreshed the token: later messages use the newest one seen.
                latest = self.tokens.current()
                if latest and latest != current:
                    state["token"] = latest
            msgid = result.get("msgid") if isinstance(result, dict) else None
            return SendResult(msgid, None, classify(None))

        threads = self.threads if threads is None else threads
        if threads <= 1 or len(payloads) <= 1:
            return [send_one(i, p) for i, p in enumerate(payloads)]
        # `threads` senders, each taking the next message until none is left (in order, as the start marks expect):
        # one lock per message rather than a future and two queue operations each, as map() would cost.
        results: list[Any] = [None] * len(payloads)
        todo = iter(enumerate(payloads))
        todo_lock = threading.Lock()

        def sender() -> None:
            while True:
                with todo_lock:
                    item = next(todo, None)
                if item is None:
                    return
                results[item[0]] = send_one(*item)

        senders = [self._pool(threads).submit(sender) for _ in range(min(threads, len(payloads)))]
        for future in senders:
            future.result()
        return results

    def _pool(self, threads: int) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None or self._executor._max_workers != threads:
                if self._executor is not None:
                    self._executor.shutdown(wait=False)
                self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wechat-send")
            return self._executor


class _PageGate:
    """Rate-limit slots for a page, reserved from the shared bucket a few at a time (one Redis round trip per
    `chunk` messages instead of one per message), never more than the page still needs."""

    def __init__(self, group: str, total: int, chunk: int = 16):
        self.group = group
        self.unreserved = total
        self.chunk = chunk
        self.slots = 0
        self.ready_at = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            if self.slots <= 0:
                _rate, burst = ratelimit.group_limits(self.group)
                count = max(1, min(self.chunk, self.unreserved, burst))
                wait = ratelimit.reserve(self.group, count)  # WeChatLocalRateLimited when the wait is too long
                self.unreserved -= count
                self.slots = count
                self.ready_at = time.monotonic() + wait
            self.slots -= 1
            ready_at = self.ready_at
        delay = ready_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _has_clientmsgid(data: Any) -> bool:
    """A mass send carrying a clientmsgid is idempotent: WeChat answers 45065 to a repeat."""
    if isinstance(data, dict):
        return bool(data.get("clientmsgid"))
    if isinstance(data, (bytes, str)):
        return b'"clientmsgid"' in (data if isinstance(data, bytes) else data.encode())
    return False


def _files_to_fields(files: dict[str, Any], data: Any) -> dict[str, Any]:
    """requests-style `files=` (as wechatpy's media upload passes them) as urllib3 multipart fields."""
    fields: dict[str, Any] = {}
    if isinstance(data, dict):
        fields.update({k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in data.items()})
    for name, value in files.items():
        if isinstance(value, tuple):
            filename, fileobj = value[0], value[1]
        else:
            fileobj = value
            filename = os.path.basename(getattr(value, "name", name))
        content = fileobj.read() if hasattr(fileobj, "read") else fileobj
        fields[name] = (filename, content)
    return fields
