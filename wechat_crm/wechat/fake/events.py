"""Job-finish events (TEMPLATESENDJOBFINISH, MASSSENDJOBFINISH) posted back to the callback URL, like WeChat.

Each worker process has one queue and a few sender threads, started on first use (after the fork). An event waits
``callback_delay`` seconds, is signed (and encrypted in safe mode) with the config current at sending time, and is
tried up to ``callback_tries`` times when the callback does not answer 200. Events queued before a reset are dropped
(the reset bumps the state's epoch). With ``job_finish_before_answer`` an API call's events are posted instead from
the thread that answers it, before it answers: the report reaches the callback before the sender learns its msgid
(the real WeChat can be that quick).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

import urllib3

from . import wxmsg
from .state import Store

log = logging.getLogger("wechat_crm.fake_wechat")


class EventSender:
    def __init__(self, store: Store, threads: int = 4) -> None:
        self.store = store
        self.threads = threads
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._http: urllib3.PoolManager | None = None

    def enqueue(self, epoch: int, delay: float, event: str, openid: str, fields: dict[str, Any]) -> None:
        self._ensure_started()
        self._queue.put((time.time() + delay, epoch, event, openid, fields, time.time()))

    def deliver_now(self, epoch: int, event: str, openid: str, fields: dict[str, Any]) -> None:
        """Post one event from the calling thread (tried as a queued one is) and record its delivery."""
        self._ensure_started()
        now = time.time()
        try:
            record = self._deliver(now, epoch, event, openid, fields, now)
        except Exception:
            log.exception("fake WeChat could not deliver an event")
            return
        if record is not None:
            self._flush([record])

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue()
            self._http = urllib3.PoolManager(maxsize=self.threads, retries=False)
            for i in range(self.threads):
                threading.Thread(target=self._run, name=f"fake-wechat-events-{i}", daemon=True).start()
            self._pid = os.getpid()

    def _run(self) -> None:
        done: list[tuple] = []  # delivery records, written in batches to keep the shared write lock free
        while True:
            try:
                item = self._queue.get(timeout=0.3)
            except queue.Empty:
                self._flush(done)
                # Keep connections alive through a burst only: an idle kept-alive connection would pin a thread
                # (and its database connection) of a test's live server.
                self._http.clear()
                continue
            try:
                record = self._deliver(*item)
            except Exception:
                log.exception("fake WeChat could not deliver an event")
                record = None
            if record is not None:
                done.append(record)
            if len(done) >= 200 or self._queue.empty():
                self._flush(done)

    def _flush(self, done: list[tuple]) -> None:
        if not done:
            return
        try:
            with self.store.write() as conn:
                epoch = conn.execute("SELECT epoch FROM config WHERE id = 1").fetchone()[0]
                conn.executemany(
                    "INSERT INTO deliveries (at, event, msg_id, openid, attempts, http_status, ok, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [row for row_epoch, row in done if row_epoch == epoch],
                )
        except Exception:
            log.exception("fake WeChat could not record deliveries")
        done.clear()

    def _deliver(
        self, due: float, epoch: int, event: str, openid: str, fields: dict[str, Any], created: float
    ) -> tuple[int, tuple] | None:
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        cfg, current_epoch = self.store.config()
        if current_epoch != epoch or not cfg["callback_url"] or not cfg["job_finish_events"]:
            return None
        xml = wxmsg.render_xml(
            {
                "ToUserName": cfg["original_id"],
                "FromUserName": openid,
                "CreateTime": int(created),
                "MsgType": "event",
                "Event": event,
                **fields,
            }
        )
        tries = max(1, int(cfg["callback_tries"]))
        status: int | None = None
        error = ""
        attempt = 0
        for attempt in range(1, tries + 1):
            params, body = wxmsg.sign_callback(
                xml,
                token=cfg["token"],
                aes_key=cfg["aes_key"],
                appid=cfg["appid"],
                original_id=cfg["original_id"],
                openid=openid,
            )
            try:
                resp = self._http.request(
                    "POST",
                    wxmsg.with_query(cfg["callback_url"], params),
                    body=body,
                    headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0 (fake WeChat)"},
                    timeout=urllib3.Timeout(total=float(cfg["callback_timeout"])),
                )
                status = resp.status
                if status == 200:
                    error = ""
                    break
                error = f"HTTP {status}"
            except urllib3.exceptions.HTTPError as exc:
                status = None
                error = type(exc).__name__
            if attempt < tries:
                time.sleep(float(cfg["callback_retry_delay"]))
                if self.store.epoch() != epoch:
                    return None
        row = (time.time(), event, fields.get("MsgID"), openid, attempt, status, int(status == 200), error)
        return epoch, row
