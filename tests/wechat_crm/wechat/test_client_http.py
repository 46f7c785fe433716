"""The client against a scripted HTTP server: where requests go, what is retried, what is never resent.

The fake WeChat server (test_client_fake.py) shows the client working with a faithful WeChat; this
small scripted server answers exactly what a test needs (a 503 then a success, a reply that comes too late),
so each rule of the retry policy is shown on its own.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache

from wechat_crm.wechat import ratelimit
from wechat_crm.wechat.client import WeChatClient, get_client
from wechat_crm.wechat.errors import (
    Outcome,
    WeChatDuplicate,
    WeChatInvalidToken,
    WeChatNotFollowing,
    WeChatOutcomeUnknown,
    WeChatRateLimited,
    WeChatTransient,
    classify,
)
from wechat_crm.wechat.tokens import cache_key


class ScriptedWeChat:
    """An HTTP/1.1 keep-alive server. `script(path, *actions)` queues answers for a path; each action is a dict
    with `status`, `json`, `body`, `delay`. Without a queued action: stable_token hands out tok-1, tok-2 ...;
    other paths answer errcode 0 with a msgid, or 40001 when the access token is not the current one."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.queues: dict[str, list[dict]] = {}
        self.tokens_issued = 0
        self.current_token: str | None = None
        self.check_tokens = True
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                action = stub._record_and_pick(self.command, parts.path, query, body)
                if action.get("delay"):
                    time.sleep(action["delay"])
                payload = action.get("body")
                if payload is None:
                    payload = json.dumps(action.get("json", {})).encode()
                try:
                    self.send_response(action.get("status", 200))
                    self.send_header("Content-Type", action.get("content_type", "application/json"))
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            do_GET = _handle
            do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def script(self, path: str, *actions: dict) -> None:
        self.queues.setdefault(path, []).extend(actions)

    def paths(self, path: str) -> list[dict]:
        return [c for c in self.calls if c["path"] == path]

    def _record_and_pick(self, method, path, query, body) -> dict:
        with self.lock:
            call = {"method": method, "path": path, "query": query, "body": body}
            self.calls.append(call)
            queue = self.queues.get(path)
            if queue:
                return queue.pop(0)
            if path == "/cgi-bin/stable_token":
                data = json.loads(body)
                if self.current_token is None or data.get("force_refresh"):
                    self.tokens_issued += 1
                    self.current_token = f"tok-{self.tokens_issued}"
                return {"json": {"access_token": self.current_token, "expires_in": 7200}}
            if self.check_tokens and query.get("access_token") != self.current_token:
                return {"json": {"errcode": 40001, "errmsg": "invalid credential"}}
            return {"json": {"errcode": 0, "errmsg": "ok", "msgid": len(self.calls)}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _clear_shared_state():
    for pattern in ("*wechat:access_token*", "*wechat:ratelimit*"):
        client = ratelimit.redis_client()
        if client is not None:
            for key in client.scan_iter(pattern):
                client.delete(key)
    cache.delete(cache_key("wx_demo_app_id"))


@pytest.fixture
def stub(settings):
    server = ScriptedWeChat()
    settings.WECHAT_API_BASE_URL = server.url
    settings.WECHAT_HTTP_BACKOFF_BASE = 0.01
    settings.WECHAT_HTTP_BACKOFF_CAP = 0.05
    settings.WECHAT_HTTP_TIMEOUT = 1.0
    _clear_shared_state()
    yield server
    server.close()
    _clear_shared_state()


def test_every_call_goes_to_the_configured_base_url_with_the_shared_token(stub):
    client = get_client()
    client.user.get("o_alice")
    client.menu.create({"button": [{"type": "click", "name": "Hi", "key": "hi"}]})

    assert [c["path"] for c in stub.calls] == [
        "/cgi-bin/stable_token",
        "/cgi-bin/user/info",
        "/cgi-bin/menu/create",
    ]
    token_request = json.loads(stub.calls[0]["body"])
    assert token_request == {
        "grant_type": "client_credential",
        "appid": "wx_demo_app_id",
        "secret": "demo_app_secret",
        "force_refresh": False,
    }
    assert stub.calls[1]["query"] == {"access_token": "tok-1", "openid": "o_alice", "lang": "zh_CN"}
    assert cache.get(cache_key("wx_demo_app_id"))["token"] == "tok-1"


def test_qrcode_image_and_url_use_the_base_url_not_mp_weixin(stub):
    stub.script("/cgi-bin/showqrcode", {"body": b"\x89PNG fake", "content_type": "image/png"})
    client = get_client()

    assert client.qrcode.get_url("tick et") == f"{stub.url}cgi-bin/showqrcode?ticket=tick%20et"
    image = client.qrcode.show({"ticket": "tick et"})
    assert image.content == b"\x89PNG fake"
    assert stub.calls[-1]["query"] == {"ticket": "tick et"}


def test_groups_with_their_own_hard_coded_host_are_rewritten(stub):
    stub.script("/datacube/getusersummary", {"json": {"list": []}})
    get_client().datacube.get_user_summary("2026-01-01", "2026-01-02")
    assert stub.calls[-1]["path"] == "/datacube/getusersummary"


def test_5xx_is_retried_with_backoff_then_succeeds(stub):
    stub.script("/cgi-bin/user/info", {"status": 503}, {"status": 500}, {"json": {"openid": "o_alice"}})
    assert get_client().user.get("o_alice") == {"openid": "o_alice"}
    assert len(stub.paths("/cgi-bin/user/info")) == 3


def test_5xx_gives_up_after_bounded_attempts(stub, settings):
    settings.WECHAT_HTTP_MAX_RETRIES = 2
    stub.script("/cgi-bin/user/info", *[{"status": 502}] * 10)
    with pytest.raises(WeChatTransient) as info:
        get_client().user.get("o_alice")
    assert len(stub.paths("/cgi-bin/user/info")) == 3
    assert classify(info.value).outcome is Outcome.RETRY_LATER


def test_system_busy_is_retried(stub):
    stub.script("/cgi-bin/message/template/send", {"json": {"errcode": -1, "errmsg": "system error"}})
    result = get_client().message.send_template("o_alice", "tpl", {"first": {"value": "hi"}})
    assert result["errcode"] == 0
    assert len(stub.paths("/cgi-bin/message/template/send")) == 2


def test_read_timeout_on_a_send_is_outcome_unknown_and_never_resent(stub, settings):
    settings.WECHAT_HTTP_TIMEOUT = 0.3
    stub.script("/cgi-bin/message/template/send", {"delay": 1.0, "json": {"errcode": 0, "msgid": 1}})
    client = get_client()
    client.tokens.get()
    with pytest.raises(WeChatOutcomeUnknown) as info:
        client.message.send_template("o_alice", "tpl", {"first": {"value": "hi"}})
    assert classify(info.value).outcome is Outcome.UNKNOWN
    time.sleep(0.8)
    assert len(stub.paths("/cgi-bin/message/template/send")) == 1


def test_read_timeout_on_a_read_is_retried(stub, settings):
    settings.WECHAT_HTTP_TIMEOUT = 0.3
    stub.script("/cgi-bin/user/info", {"delay": 1.0, "json": {}}, {"json": {"openid": "o_alice"}})
    assert get_client().user.get("o_alice") == {"openid": "o_alice"}
    assert len(stub.paths("/cgi-bin/user/info")) == 2


def test_mass_send_with_a_clientmsgid_is_retried_after_a_timeout(stub, settings):
    settings.WECHAT_HTTP_TIMEOUT = 0.3
    stub.script("/cgi-bin/message/mass/send", {"delay": 1.0, "json": {}}, {"json": {"errcode": 45065, "errmsg": "x"}})
    client = get_client()
    with pytest.raises(WeChatDuplicate) as info:
        client.message.send_mass_text(["o_a", "o_b"], "hello", client_msg_id="push-7-batch-1")
    assert classify(info.value).outcome is Outcome.SENT_ALREADY
    assert len(stub.paths("/cgi-bin/message/mass/send")) == 2


def test_connect_failure_is_transient(settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    settings.WECHAT_API_BASE_URL = f"http://127.0.0.1:{port}/"
    settings.WECHAT_HTTP_BACKOFF_BASE = 0.01
    settings.WECHAT_HTTP_MAX_RETRIES = 1
    _clear_shared_state()
    client = WeChatClient()
    with pytest.raises(WeChatTransient) as info:
        client.call("POST", client.base_url + "cgi-bin/message/template/send", body=b"{}", idempotent=False)
    assert "connect" in info.value.errmsg
    assert classify(info.value).outcome is Outcome.RETRY_LATER


@pytest.mark.parametrize(
    ("errcode", "exc_type"),
    [(43004, WeChatNotFollowing), (45009, WeChatRateLimited), (45011, WeChatRateLimited), (45065, WeChatDuplicate)],
)
def test_errcodes_raise_typed_errors_without_retrying(stub, errcode, exc_type):
    stub.script("/cgi-bin/message/custom/send", {"json": {"errcode": errcode, "errmsg": "x"}})
    with pytest.raises(exc_type):
        get_client().message.send_text("o_alice", "hello")
    assert len(stub.paths("/cgi-bin/message/custom/send")) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "text/html; charset=utf-8", "application/json"])
def test_an_error_is_read_from_its_json_whatever_the_content_type(stub, content_type):
    body = b'{"errcode": 45009, "errmsg": "reach max api daily quota limit"}'
    stub.script("/cgi-bin/message/custom/send", {"body": body, "content_type": content_type})
    with pytest.raises(WeChatRateLimited):
        get_client().message.send_text("o_alice", "hello")


def test_a_json_list_answered_as_text_plain_comes_back_raw(stub):
    stub.script("/cgi-bin/showqrcode", {"body": b"[1, 2]", "content_type": "text/plain"})
    assert get_client().qrcode.show({"ticket": "t"}).content == b"[1, 2]"


def test_refused_token_is_refreshed_once_and_the_call_retried_once(stub):
    client = get_client()
    assert client.tokens.get() == "tok-1"
    stub.current_token = "tok-from-elsewhere"  # somebody else's fetch invalidated ours

    client.user.get("o_alice")  # refused (40001), refreshed by force, retried with the new token

    token_fetches = stub.paths("/cgi-bin/stable_token")
    assert [json.loads(c["body"])["force_refresh"] for c in token_fetches] == [False, True]
    assert [c["query"]["access_token"] for c in stub.paths("/cgi-bin/user/info")] == ["tok-1", "tok-2"]


def test_token_refused_twice_fails_without_looping(stub):
    stub.script("/cgi-bin/user/info", *[{"json": {"errcode": 40001, "errmsg": "invalid credential"}}] * 5)
    with pytest.raises(WeChatInvalidToken):
        get_client().user.get("o_alice")
    assert len(stub.paths("/cgi-bin/user/info")) == 2
    assert len(stub.paths("/cgi-bin/stable_token")) == 2


def test_send_template_many_returns_one_result_per_message_in_order(stub):
    stub.script(
        "/cgi-bin/message/template/send",
        *[{"json": {"errcode": 0, "msgid": 100 + i}} for i in range(3)],
    )
    client = get_client()
    messages = [{"touser": f"o_{i}", "template_id": "tpl", "data": {"first": {"value": "hi"}}} for i in range(3)]
    results = client.send_template_many(messages, threads=1)
    assert [r.msgid for r in results] == [100, 101, 102]
    assert all(r.ok and r.outcome is Outcome.SENT for r in results)


def test_send_template_many_classifies_each_failure_without_raising(stub):
    stub.check_tokens = False
    stub.script(
        "/cgi-bin/message/template/send",
        {"json": {"errcode": 43004, "errmsg": "require subscribe"}},
        {"json": {"errcode": 45009, "errmsg": "reach max api daily quota limit"}},
        {"status": 500},
        {"status": 500},
        {"status": 500},
        {"status": 500},
    )
    client = get_client()
    messages = [{"touser": f"o_{i}", "template_id": "tpl", "data": {}} for i in range(3)]
    results = client.send_template_many(messages, threads=1)
    assert [r.outcome for r in results] == [Outcome.NOT_FOLLOWING, Outcome.RETRY_LATER, Outcome.RETRY_LATER]
    assert isinstance(results[2].error, WeChatTransient)
    assert results[1].classification.retry_after > 60


def test_calls_go_on_after_the_transport_dropped_its_connections(stub):
    client = get_client()
    client.user.get("o_alice")
    client.transport.pool.clear()  # what the pool manager does to a host's pool when it makes room for others

    client.user.get("o_bob")
    assert [c["query"].get("openid") for c in stub.paths("/cgi-bin/user/info")] == ["o_alice", "o_bob"]
