"""The subscriber simulator: N people following, talking, clicking, scanning and leaving, as WeChat reports them.

It POSTs WeChat-shaped XML to our callback URL, signed with the token (and encrypted in safe mode), with realistic
random spacing (or as fast as allowed with ``fast=True``), one person's events always in order. When given the fake
WeChat server's URL it registers each follow and unfollow there, so the product's profile lookups find the person.
Nothing here imports Django; ``manage.py simulate_subscribers`` wraps it.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import urllib3

from . import wxmsg
from .control import FakeWeChat, FakeWeChatError
from .script import (
    ACTION_WEIGHTS,
    ACTIONS,
    DEFAULT_CLICK_KEYS,
    DEFAULT_VIEW_URLS,
    PLACES,
    TEXTS,
    SimulatorError,
    Step,
    Summary,
    _RateLimiter,
    _scene_fields,
)
from .users import make_openid


@dataclass
class Simulator:
    callback: str
    count: int
    token: str
    aes_key: str = ""
    appid: str = ""
    original_id: str = "gh_fakewechat01"
    fake_wechat: str | None = None
    channels: list[str] = field(default_factory=list)
    rate: float | None = None
    duration: float = 60.0
    seed: int | None = None
    fast: bool = False
    concurrency: int = 4
    timeout: float = 5.0
    retries: int = 2
    unfollow_share: float = 0.15
    channel_share: float = 0.6
    scan_share: float = 0.15
    max_actions: int = 5
    click_keys: list[str] | None = None
    view_urls: list[str] | None = None
    # Subscription notices (订阅通知): the account's notice template ids offered in WeChat's popup. A share of the
    # people answer it (each template accepted or rejected), and a share of those who accepted withdraw later.
    notice_templates: list[str] = field(default_factory=list)
    notice_share: float = 0.3
    notice_withdraw_share: float = 0.2

    def __post_init__(self) -> None:
        if self.count < 0:
            raise SimulatorError("count must not be negative")
        if self.concurrency < 1:
            raise SimulatorError("concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise SimulatorError("rate must be positive")
        if self.duration < 0:
            raise SimulatorError("duration must not be negative")
        if self.aes_key and len(self.aes_key) != 43:
            raise SimulatorError("the EncodingAESKey must be 43 characters")
        self._http = urllib3.PoolManager(maxsize=self.concurrency, retries=False)
        self._fake = FakeWeChat(self.fake_wechat) if self.fake_wechat else None
        self._tickets: dict[str, str] = {}
        # MsgIds unique across runs: microseconds since the epoch times 1000, then counting up.
        self._msgids = itertools.count(time.time_ns() // 1000 * 1000 + random.randrange(1000))
        self._lock = threading.Lock()
        self.summary = Summary(people=self.count)
        self._last_create: dict[str, int] = {}

    # --- preparing -------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Verify the callback answers (WeChat's URL check with ``echostr``) and the fake server is up."""
        ts, nc, echo = str(int(time.time())), wxmsg.nonce(), "sim" + wxmsg.nonce()
        params = {"signature": wxmsg.signature(self.token, ts, nc), "timestamp": ts, "nonce": nc, "echostr": echo}
        try:
            resp = self._http.request("GET", wxmsg.with_query(self.callback, params), timeout=self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise SimulatorError(f"callback {self.callback} is unreachable: {type(exc).__name__}") from exc
        if resp.status != 200 or resp.data.decode(errors="replace").strip() != echo:
            self.summary.warnings.append(f"callback did not pass WeChat's URL check (HTTP {resp.status})")
        if self._fake is not None:
            if not self._fake.health():
                raise SimulatorError(f"fake WeChat server {self.fake_wechat} is unreachable")
            try:
                self._tickets = self._known_tickets()
                menu = self._fake.menu().get("button", [])
            except (FakeWeChatError, urllib3.exceptions.HTTPError) as exc:
                raise SimulatorError(f"fake WeChat server {self.fake_wechat}: {exc}") from exc
            buttons = [b for top in menu for b in (top.get("sub_button") or [top])]
            keys = [b["key"] for b in buttons if b.get("type") == "click" and b.get("key")]
            urls = [b["url"] for b in buttons if b.get("type") == "view" and b.get("url")]
            self.click_keys = self.click_keys or keys or None
            self.view_urls = self.view_urls or urls or None

    def _known_tickets(self) -> dict[str, str]:
        tickets = {}
        for qrcode in self._fake.qrcodes():
            scene = qrcode.get("scene") or {}
            key = str(scene.get("scene_str") or scene.get("scene_id") or "")
            if key:
                tickets[key] = qrcode["ticket"]
        return tickets

    def plan(self) -> list[Step]:
        """Every person's script, with times in seconds from the start (deterministic for a given seed)."""
        rng = random.Random(self.seed)
        click_keys = self.click_keys or DEFAULT_CLICK_KEYS
        view_urls = self.view_urls or DEFAULT_VIEW_URLS
        steps: list[Step] = []
        span = 0.0 if self.fast else self.duration
        for person in range(self.count):
            openid = make_openid(rng)
            start = rng.uniform(0, span)
            scripted: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
            roll = rng.random()
            register: dict[str, Any] = {"unionid": make_openid(rng, prefix="oU"), "subscribe_scene": "ADD_SCENE_SEARCH"}
            follow_fields: dict[str, Any] = {}
            scan_later = None
            if self.channels and roll < self.channel_share:
                scene = rng.choice(self.channels)
                follow_fields = {"EventKey": f"qrscene_{scene}", "Ticket": self._ticket(scene)}
                register.update(subscribe_scene="ADD_SCENE_QR_CODE", **_scene_fields(scene))
            elif self.channels and roll < self.channel_share + self.scan_share:
                scan_later = rng.choice(self.channels)  # already following, scans a channel code later
            scripted.append(("subscribe", follow_fields, register))
            actions = [rng.choices(ACTIONS, ACTION_WEIGHTS)[0] for _ in range(rng.randint(0, self.max_actions))]
            if scan_later is not None:
                actions.insert(rng.randint(0, len(actions)), "SCAN")
            for action in actions:
                scripted.append((action, self._fields(action, rng, click_keys, view_urls, scan_later), None))
            scripted += self._notice_steps(rng)
            if rng.random() < self.unfollow_share:
                scripted.append(("unsubscribe", {"EventKey": ""}, {}))
            gaps = [rng.expovariate(1 / 20) for _ in scripted[1:]]
            total = sum(gaps)
            room = max(span - start, 0.0)
            scale = room / total if total > room and total else (0.0 if self.fast else 1.0)
            at = start
            for i, (kind, fields, reg) in enumerate(scripted):
                if i:
                    at += gaps[i - 1] * scale
                steps.append(Step(person=person, openid=openid, at=at, kind=kind, fields=fields, register=reg))
        return steps

    def _notice_steps(self, rng: random.Random) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        """The person's answer to WeChat's subscription-notice popup and maybe a later withdrawal, as WeChat reports
        them (subscribe_msg_popup_event, subscribe_msg_change_event); the fake learns them first (it refuses a
        notice the person did not accept)."""
        if not self.notice_templates or rng.random() >= self.notice_share:
            return []
        decisions = {t: rng.random() < 0.7 for t in self.notice_templates}
        accepted = [t for t, ok in decisions.items() if ok]
        items = [{"TemplateId": t, "SubscribeStatusString": "accept" if ok else "reject", "PopupScene": 2}
                 for t, ok in decisions.items()]  # fmt: skip
        steps: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
            ("subscribe_msg_popup_event", {"SubscribeMsgPopupEvent": {"List": items}},
             {"accept": accepted, "reject": [t for t, ok in decisions.items() if not ok]}),
        ]  # fmt: skip
        if accepted and rng.random() < self.notice_withdraw_share:
            withdrawn = [rng.choice(accepted)]
            items = [{"TemplateId": t, "SubscribeStatusString": "reject"} for t in withdrawn]
            steps.append(("subscribe_msg_change_event", {"SubscribeMsgChangeEvent": {"List": items}},
                          {"withdraw": withdrawn}))  # fmt: skip
        return steps

    def _ticket(self, scene: str) -> str:
        return self._tickets.get(scene) or "gQ" + wxmsg.signature("ticket", scene)[:40]

    def _fields(self, action: str, rng: random.Random, keys: list[str], urls: list[str], scene: str | None):
        if action == "text":
            return {"Content": rng.choice(TEXTS)}
        if action == "image":
            return {
                "PicUrl": f"http://mmbiz.qpic.cn/sim/{rng.randrange(10**9)}/0",
                "MediaId": f"media_{rng.randrange(10**9)}",
            }
        if action == "location":
            lat, lng, label = rng.choice(PLACES)
            return {
                "Location_X": round(lat + rng.uniform(-0.05, 0.05), 6),
                "Location_Y": round(lng + rng.uniform(-0.05, 0.05), 6),
                "Scale": 15,
                "Label": label,
            }
        if action == "CLICK":
            return {"EventKey": rng.choice(keys)}
        if action == "VIEW":
            return {"EventKey": rng.choice(urls), "MenuId": str(rng.randrange(10**9))}
        if action == "SCAN":
            return {"EventKey": scene, "Ticket": self._ticket(scene)}
        raise SimulatorError(f"unknown action {action}")

    # --- running ---------------------------------------------------------------------------------------------
    def run(self) -> Summary:
        self.check()
        steps = self.plan()
        lanes: list[list[Step]] = [[] for _ in range(self.concurrency)]
        for step in steps:
            lanes[step.person % self.concurrency].append(step)
        for lane in lanes:
            lane.sort(key=lambda s: s.at)  # stable: one person's steps keep their order
        limiter = _RateLimiter(self.rate)
        started = time.monotonic()
        threads = [
            threading.Thread(target=self._run_lane, args=(lane, started, limiter), daemon=True)
            for lane in lanes
            if lane
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.summary.elapsed = time.monotonic() - started
        return self.summary

    def _run_lane(self, lane: list[Step], started: float, limiter: _RateLimiter) -> None:
        for step in lane:
            if not self.fast:
                wait = started + step.at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            limiter.wait()
            try:
                self._send(step)
            except Exception as exc:  # a bug or an unexpected answer must not kill the other people's lanes
                self._count(step.kind, failure=f"error: {type(exc).__name__}")

    def _register(self, step: Step) -> None:
        if self._fake is None or step.register is None:
            return
        try:
            if step.kind == "subscribe":
                self._fake.subscribe(step.openid, subscribe_time=int(time.time()), **step.register)
            elif step.kind in ("subscribe_msg_popup_event", "subscribe_msg_change_event"):
                self._fake.notices_decide(step.openid, post=False, **step.register)
            else:
                self._fake.unsubscribe(step.openid)
        except (FakeWeChatError, urllib3.exceptions.HTTPError) as exc:
            with self._lock:
                self.summary.failures[f"fake server: {type(exc).__name__}"] += 1

    def _message(self, step: Step) -> str:
        return wxmsg.render_xml(self._document(step))

    def _document(self, step: Step) -> dict[str, Any]:
        now = int(time.time())
        with self._lock:
            # One person's events get distinct, increasing CreateTimes, as the product dedupes events by them.
            created = max(now, self._last_create.get(step.openid, 0) + 1)
            self._last_create[step.openid] = created
        fields: dict[str, Any] = {"ToUserName": self.original_id, "FromUserName": step.openid, "CreateTime": created}
        if step.kind in ("text", "image", "location"):
            fields["MsgType"] = step.kind
            fields.update(step.fields)
            fields["MsgId"] = next(self._msgids)
        else:
            fields["MsgType"] = "event"
            fields["Event"] = step.kind
            fields.update(step.fields)
        return fields

    def _tell(self, step: Step, fields: dict[str, Any]) -> None:
        """WeChat knows what the person did: the fake learns it (its customer-service window opens on it)."""
        if self._fake is None:
            return
        try:
            self._fake.interactions(
                step.openid, {k: v for k, v in fields.items() if k in ("MsgType", "Event", "CreateTime")}
            )
        except (FakeWeChatError, urllib3.exceptions.HTTPError) as exc:
            with self._lock:
                self.summary.failures[f"fake server: {type(exc).__name__}"] += 1

    def _send(self, step: Step) -> None:
        self._register(step)
        fields = self._document(step)
        self._tell(step, fields)
        xml = wxmsg.render_xml(fields)
        failure = None
        retried = 0
        for attempt in range(self.retries + 1):
            params, body = wxmsg.sign_callback(
                xml,
                token=self.token,
                aes_key=self.aes_key,
                appid=self.appid,
                original_id=self.original_id,
                openid=step.openid,
            )
            try:
                resp = self._http.request(
                    "POST",
                    wxmsg.with_query(self.callback, params),
                    body=body,
                    headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0 (simulated WeChat)"},
                    timeout=self.timeout,
                )
            except urllib3.exceptions.HTTPError as exc:
                failure = type(exc).__name__
            else:
                if resp.status == 200:
                    self._count(step.kind, replied=self._is_reply(resp.data, params), retried=retried)
                    return
                failure = f"HTTP {resp.status}"
                if resp.status < 500:
                    break  # our callback refused it; WeChat would not retry a 4xx either
            if attempt < self.retries:
                retried += 1
                time.sleep(0.05 if self.fast else 1.0)
        self._count(step.kind, failure=failure, retried=retried)

    def _is_reply(self, data: bytes, params: dict[str, str]) -> bool:
        text = data.strip()
        if not text or text == b"success":
            return False
        if self.aes_key and b"<Encrypt>" in text:
            try:
                wxmsg.decrypt_reply(
                    text,
                    token=self.token,
                    aes_key=self.aes_key,
                    appid=self.appid,
                    timestamp=params["timestamp"],
                    nonce_=params["nonce"],
                )
            except Exception:
                with self._lock:
                    if len(self.summary.warnings) < 10:
                        self.summary.warnings.append("a reply could not be decrypted")
        return True

    def _count(self, kind: str, *, replied: bool = False, failure: str | None = None, retried: int = 0) -> None:
        with self._lock:
            self.summary.sent += 1
            self.summary.by_type[kind] += 1
            self.summary.retried += retried
            if failure:
                self.summary.failed += 1
                self.summary.failures[failure] += 1
            else:
                self.summary.answered += 1
                self.summary.replied += int(replied)
