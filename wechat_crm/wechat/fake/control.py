"""A Python client for the fake WeChat server's control API, for tests, the demo and bench scripts.

fake = FakeWeChat("http://127.0.0.1:8801/")
fake.reset()
fake.configure(token_ttl=5, faults=[{"path": "/cgi-bin/message/template/send", "errcode": 45009, "times": 2}])
openids = fake.add_users(generate=100)
...
fake.count("/cgi-bin/message/template/send", errcode=0)
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import urllib3


class FakeWeChatError(RuntimeError):
    pass


class FakeWeChat:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self._http = urllib3.PoolManager(maxsize=4, retries=False, timeout=urllib3.Timeout(total=timeout))

    def __repr__(self) -> str:
        return f"FakeWeChat({self.url!r})"

    # --- plumbing -------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None) -> Any:
        url = self.url + path.lstrip("/")
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        body = None if json_body is None else json.dumps(json_body, ensure_ascii=False).encode()
        resp = self._http.request(method, url, body=body, headers={"Content-Type": "application/json"})
        try:
            data = json.loads(resp.data) if resp.data else None
        except ValueError:
            data = resp.data
        if resp.status >= 400 and path.startswith("_fake/"):
            raise FakeWeChatError(f"{method} {path}: HTTP {resp.status} {data}")
        return data

    def _control(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, "_fake/" + path, **kw)

    # --- control API --------------------------------------------------------------------------------------
    def health(self) -> bool:
        try:
            return bool(self._control("GET", "health").get("ok"))
        except (urllib3.exceptions.HTTPError, FakeWeChatError, AttributeError):
            return False

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() > deadline:
                raise FakeWeChatError(f"fake WeChat at {self.url} did not become healthy in {timeout} s")
            time.sleep(0.05)

    def add_media(self, media_id: str, data: bytes, content_type: str) -> None:
        """A subscriber's image or voice, served by media/get under `media_id` (what an inbound message names)."""
        import base64

        self._control(
            "POST",
            "media",
            json_body={"media_id": media_id, "content_type": content_type, "data": base64.b64encode(data).decode()},
        )

    def reset(self, **config: Any) -> dict[str, Any]:
        """Everything back to the start (tokens, users, tags, calls, quotas, faults); ``config`` applied on top."""
        return self._control("POST", "reset", json_body=config)

    def configure(self, config: dict[str, Any] | None = None, /, **kw: Any) -> dict[str, Any]:
        """Merge config keys (see ``state.DEFAULT_CONFIG``), e.g. ``configure(callback_url=..., token_ttl=3)``."""
        return self._control("POST", "config", json_body={**(config or {}), **kw})

    def config(self) -> dict[str, Any]:
        return self._control("GET", "config")

    def calls(
        self,
        path: str | None = None,
        *,
        errcode: int | None = None,
        since_id: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Recorded API calls (oldest first): id, at, method, path, query, body (parsed JSON), status, errcode,
        fault (e.g. "errcode_45009", "http_503", "timeout_answer") and pid (the worker that answered)."""
        params = {"path": _api_path(path), "errcode": errcode, "since_id": since_id, "limit": limit}
        return self._control("GET", "calls", params=params)["calls"]

    def count(self, path: str | None = None, *, errcode: int | None = None) -> int:
        params = {"path": _api_path(path), "errcode": errcode, "count_only": 1}
        return self._control("GET", "calls", params=params)["count"]

    def clear_calls(self) -> None:
        self._control("DELETE", "calls")

    def add_users(self, users: list[dict[str, Any]] | None = None, *, generate: int = 0, **extra: Any) -> list[str]:
        """Seed users (``{"openid": ..., "subscribe": 1, "tagid_list": [...], ...}``) and/or generate some.

        Returns the openids, in order (given users first).
        """
        payload = {"users": users or [], "generate": generate, **extra}
        return self._control("POST", "users", json_body=payload)["openids"]

    def user(self, openid: str) -> dict[str, Any] | None:
        try:
            return self._control("GET", f"users/{quote(openid, safe='')}")
        except FakeWeChatError:
            return None

    def users(self, *, subscribe: int | None = None) -> list[dict[str, Any]]:
        return self._control("GET", "users", params={"subscribe": subscribe})["users"]

    def subscribe(self, openid: str, **fields: Any) -> dict[str, Any]:
        return self._control("POST", f"users/{quote(openid, safe='')}/subscribe", json_body=fields)

    def unsubscribe(self, openid: str) -> dict[str, Any]:
        return self._control("POST", f"users/{quote(openid, safe='')}/unsubscribe", json_body={})

    def notices_decide(
        self,
        openid: str,
        *,
        accept: list[str] | None = None,
        reject: list[str] | None = None,
        withdraw: list[str] | None = None,
        popup_scene: int = 2,
        post: bool = True,
    ) -> dict[str, Any]:
        """The person answers WeChat's subscription-notice popup (accept / reject template ids: WeChat posts
        subscribe_msg_popup_event to the callback) or rejects templates later in WeChat's settings (withdraw:
        subscribe_msg_change_event). Returns the events posted and what WeChat now holds for the person.
        `post=False` only records the decisions (the subscriber simulator posts the events itself)."""
        body = {"accept": accept or [], "reject": reject or [], "withdraw": withdraw or [], "popup_scene": popup_scene,
                "post": post}  # fmt: skip
        return self._control("POST", f"users/{quote(openid, safe='')}/notices", json_body=body)

    def notices(self, openid: str) -> dict[str, dict[str, int]]:
        """What WeChat holds for the person, per template: accepted (0/1) and the one-time notices left."""
        return self._control("GET", f"users/{quote(openid, safe='')}/notices")

    def interactions(self, openid: str, *items: dict[str, Any]) -> dict[str, Any]:
        """Tell the fake what the person sent the account, as the callback's fields (``{"MsgType": "text"}``,
        ``{"MsgType": "event", "Event": "CLICK"}``, with ``CreateTime`` in seconds, default now): WeChat's
        customer-service window opens on what WeChat counts. Returns what was recorded and the window now."""
        return self._control("POST", f"users/{quote(openid, safe='')}/interactions",
                             json_body={"interactions": list(items)})  # fmt: skip

    def interact(self, openid: str, msgtype: str = "text", *, event: str | None = None, at: float | None = None):
        """One interaction (see `interactions`): ``interact(openid)`` is a text message now."""
        item: dict[str, Any] = {"MsgType": msgtype}
        if event is not None:
            item["Event"] = event
        if at is not None:
            item["CreateTime"] = at
        return self.interactions(openid, item)

    def window(self, openid: str) -> dict[str, Any]:
        """The person's customer-service window as the fake sees it: open, remaining, closes_at, errcode."""
        return self._control("GET", f"users/{quote(openid, safe='')}/interactions")

    def expire_tokens(self) -> None:
        """Make every issued access token expired now (42001 on use)."""
        self._control("POST", "tokens/expire")

    def invalidate_tokens(self) -> None:
        """Make every issued access token stale now (40001 on use)."""
        self._control("POST", "tokens/invalidate")

    def deliveries(self, event: str | None = None) -> list[dict[str, Any]]:
        """Job-finish events posted to the callback URL: event, msg_id, openid, attempts, http_status, ok."""
        return self._control("GET", "deliveries", params={"event": event})["deliveries"]

    def delivery_count(self, event: str | None = None) -> int:
        return self._control("GET", "deliveries", params={"event": event, "count_only": 1})["count"]

    def menu(self) -> dict[str, Any]:
        return self._control("GET", "menu")

    def qrcodes(self) -> list[dict[str, Any]]:
        return self._control("GET", "qrcodes")["qrcodes"]

    def authorize(self, url: str, *, openid: str | None) -> tuple[int, str]:
        """Open WeChat's authorise URL (as our product redirects to it) in a WeChat browser where `openid` is
        signed in (None: a browser that is not WeChat's). Returns the status and, for the 302, where WeChat sends
        the browser back to (``redirect_uri?code=...&state=...``)."""
        url = url.split("#", 1)[0]  # the #wechat_redirect fragment stays in the browser
        headers = {"Cookie": f"fake_wechat_openid={openid}"} if openid else {}
        resp = self._http.request("GET", url, headers=headers, redirect=False)
        return resp.status, resp.headers.get("Location", "")

    # --- WeChat's API, for tests and scripts -------------------------------------------------------------
    def fetch_token(self) -> str:
        cfg = self.config()
        data = self.request(
            "POST",
            "cgi-bin/stable_token",
            json_body={"grant_type": "client_credential", "appid": cfg["appid"], "secret": cfg["secret"]},
        )
        return data["access_token"]

    def api(self, path: str, body: Any = None, *, access_token: str | None = None, **params: Any) -> Any:
        """Call a WeChat API path (POST when ``body`` is given) and return the decoded JSON."""
        if access_token is not None:
            params["access_token"] = access_token
        return self.request("GET" if body is None else "POST", _api_path(path), params=params, json_body=body)


def _api_path(path: str | None) -> str | None:
    if path is None:
        return None
    return path if path.startswith("/") else "/" + path
