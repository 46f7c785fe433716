"""The fake WeChat server's state, shared by all its worker processes: one SQLite file in WAL mode.

Every API request runs in one short ``BEGIN IMMEDIATE`` transaction (token check, quota counter, the change itself
and the call record), so several gunicorn workers see one consistent WeChat. Nothing here imports Django.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_CONFIG: dict[str, Any] = {
    # The account.
    "appid": "wx_demo_app_id",
    "secret": "demo_app_secret",
    "token": "demo_token",
    "aes_key": "",
    "original_id": "gh_fakewechat01",
    # Where job-finish events go ("" = nowhere).
    "callback_url": "",
    # Access tokens: lifetime, and how long a superseded token keeps working (WeChat: 5 minutes).
    "token_ttl": 7200,
    "token_grace": 300,
    # Faults, applied to /cgi-bin/ calls only.
    "latency_ms": 0,
    "error_5xx_rate": 0.0,
    "timeout_rate": 0.0,
    "timeout_seconds": 10.0,
    "timeout_mode": "answer",  # "answer": process, then answer late; "drop": close the connection unanswered
    "errcode_rates": {},  # {"45009": 0.1}
    "faults": [],  # [{"path": "/cgi-bin/message/template/send", "rate": 1.0, "errcode": 45009, "times": 2}]
    # Daily quotas per API path: {"/cgi-bin/message/template/send": 100000}; 45009 (45028 for mass sends) beyond.
    "quotas": {},
    # Per-minute limits per API path: {"/cgi-bin/message/custom/send": 600}; 45011 beyond, until the next minute.
    "minute_limits": {},
    # Job-finish events posted back to callback_url.
    "job_finish_events": True,
    "callback_delay": 0.2,
    "job_finish_before_answer": False,  # post an API call's events before answering it (events.py)
    "callback_timeout": 5.0,
    "callback_tries": 3,
    "callback_retry_delay": 1.0,
    "template_failure_rates": {"failed:user block": 0.0, "failed: system failed": 0.0},
    # subscribe_msg_sent_event: the share of notices WeChat reports as not delivered, by ErrorStatus.
    "notice_failure_rates": {},
    "mass_error_rate": 0.0,
    # API behaviour.
    "user_get_page_size": 10000,
    "enforce_subscription": True,
    # WeChat's customer-service window (客服消息下发规则), learned from the interactions the fake is told of
    # (POST /_fake/users/<openid>/interactions: the simulator and the tests' callback poster tell it what each person
    # sent): message/custom/send answers 45015 outside it and 45047 beyond its message count.
    "enforce_cs_window": True,
    # Publishing (see publishing.py and datacube.py): the account's type decides its mass-send rules
    # ("subscription": one mass send a day, no openid lists; "service": each follower gets at most 4 a month),
    # API paths answered 48001 (a permission the account lacks, e.g. freepublish on an unverified account), and a
    # clock offset in seconds (datacube's "today" moves with it: its data is there from the next day on).
    "account_type": "service",
    "denied_apis": [],
    "clock_offset": 0,
    # Web authorisation (oauth.py): how long an authorise code may be exchanged (WeChat: 5 minutes).
    "oauth_code_ttl": 300,
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL, initial TEXT NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0, msgid_base INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, kind TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, invalid_after REAL);
CREATE TABLE IF NOT EXISTS users (seq INTEGER PRIMARY KEY AUTOINCREMENT, openid TEXT NOT NULL UNIQUE,
    subscribe INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS users_subscribe_seq ON users (subscribe, seq);
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS user_tags (tagid INTEGER NOT NULL, openid TEXT NOT NULL, PRIMARY KEY (tagid, openid))
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS user_tags_openid ON user_tags (openid);
CREATE TABLE IF NOT EXISTS qrcodes (ticket TEXT PRIMARY KEY, action_name TEXT NOT NULL, scene TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clientmsgids (clientmsgid TEXT PRIMARY KEY, msg_id INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS mass_jobs (msg_id INTEGER PRIMARY KEY, status TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS menu (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS materials (media_id TEXT PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL,
    url TEXT NOT NULL, size INTEGER NOT NULL, update_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS body_images (url TEXT PRIMARY KEY, size INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inbound_media (media_id TEXT PRIMARY KEY, content_type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS drafts (media_id TEXT PRIMARY KEY, data TEXT NOT NULL, update_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS publishes (publish_id TEXT PRIMARY KEY, media_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mass_sends (msg_id INTEGER PRIMARY KEY, day TEXT NOT NULL, month TEXT NOT NULL,
    msgtype TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mass_receipts (openid TEXT NOT NULL, month TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (openid, month)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS article_stats (msgid TEXT PRIMARY KEY, ref_date TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notice_templates (template_id TEXT PRIMARY KEY, tid TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notice_consents (openid TEXT NOT NULL, template_id TEXT NOT NULL, accepted INTEGER NOT NULL,
    credits INTEGER NOT NULL, PRIMARY KEY (openid, template_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cs_interactions (openid TEXT NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS cs_interactions_openid_at ON cs_interactions (openid, at);
CREATE TABLE IF NOT EXISTS cs_sends (openid TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS cs_sends_openid_at ON cs_sends (openid, at);
CREATE TABLE IF NOT EXISTS oauth_codes (code TEXT PRIMARY KEY, openid TEXT NOT NULL, scope TEXT NOT NULL,
    created_at REAL NOT NULL, used_at REAL);
CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, method TEXT NOT NULL,
    path TEXT NOT NULL, query TEXT NOT NULL, body TEXT NOT NULL, status INTEGER NOT NULL, errcode INTEGER,
    fault TEXT, pid INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS calls_path_errcode ON calls (path, errcode);
CREATE TABLE IF NOT EXISTS deliveries (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, event TEXT NOT NULL,
    msg_id INTEGER, openid TEXT, attempts INTEGER NOT NULL, http_status INTEGER, ok INTEGER NOT NULL, error TEXT);
"""

_DATA_TABLES = ("tokens", "users", "tags", "user_tags", "qrcodes", "counters", "clientmsgids", "mass_jobs", "menu",
                "cs_interactions", "cs_sends", "calls", "deliveries", "materials", "body_images", "inbound_media",
                "drafts", "publishes", "mass_sends", "mass_receipts", "article_stats", "notice_templates",
                "notice_consents", "oauth_codes")  # fmt: skip

RESERVED_TAGS = {2: "星标组"}


class ConfigError(ValueError):
    pass


def validate_config(changes: dict[str, Any]) -> dict[str, Any]:
    """Check keys and types of a config change; return the cleaned change."""
    if not isinstance(changes, dict):
        raise ConfigError("config must be a JSON object")
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in DEFAULT_CONFIG:
            raise ConfigError(f"unknown config key: {key}")
        default = DEFAULT_CONFIG[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false")
        elif isinstance(default, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key} must be a number")
            if value < 0:
                raise ConfigError(f"{key} must not be negative")
            if key.endswith("_rate") and value > 1:
                raise ConfigError(f"{key} must be between 0 and 1")
        elif not isinstance(value, type(default)):
            raise ConfigError(f"{key} must be a {type(default).__name__}")
        if key == "account_type" and value not in ("service", "subscription"):
            raise ConfigError("account_type must be 'service' or 'subscription'")
        if key == "denied_apis" and not all(isinstance(p, str) and p.startswith("/") for p in value):
            raise ConfigError("denied_apis lists API paths")
        if key == "timeout_mode" and value not in ("answer", "drop"):
            raise ConfigError("timeout_mode must be 'answer' or 'drop'")
        if key == "faults":
            for rule in value:
                _validate_fault(rule)
        if key in ("errcode_rates", "template_failure_rates", "notice_failure_rates"):
            for code, rate in value.items():
                if key == "errcode_rates" and not str(code).lstrip("-").isdigit():
                    raise ConfigError(f"errcode_rates keys must be error codes, not {code!r}")
                if not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise ConfigError(f"{key} values must be rates between 0 and 1")
        if key in ("quotas", "minute_limits"):
            for path, limit in value.items():
                if not str(path).startswith("/") or not isinstance(limit, int) or limit < 0:
                    raise ConfigError(f"{key} maps an API path to a non-negative integer")
        if key == "aes_key" and value and len(value) != 43:
            raise ConfigError("aes_key must be 43 characters (or empty for plain mode)")
        clean[key] = value
    return clean


def _validate_fault(rule: Any) -> None:
    if not isinstance(rule, dict):
        raise ConfigError("each fault must be an object")
    kinds = [k for k in ("errcode", "status", "timeout") if k in rule]
    if len(kinds) != 1:
        raise ConfigError("each fault needs exactly one of errcode, status, timeout")
    unknown = set(rule) - {"path", "touser", "rate", "errcode", "status", "timeout", "times", "mode"}
    if unknown:
        raise ConfigError(f"unknown fault keys: {sorted(unknown)}")
    rate = rule.get("rate", 1.0)
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ConfigError("fault rate must be between 0 and 1")
    if "times" in rule and (not isinstance(rule["times"], int) or rule["times"] < 0):
        raise ConfigError("fault times must be a non-negative integer")
    if "status" in rule and (not isinstance(rule["status"], int) or not 400 <= rule["status"] <= 599):
        raise ConfigError("fault status must be an HTTP error status")
    if rule.get("mode", "answer") not in ("answer", "drop"):
        raise ConfigError("fault mode must be 'answer' or 'drop'")
    if "touser" in rule and not isinstance(rule["touser"], str):
        raise ConfigError("fault touser must be an openid")
    if "errcode" in rule and not isinstance(rule["errcode"], int):
        raise ConfigError("fault errcode must be an integer")


class Store:
    """Thread-safe access to the state file: one SQLite connection per thread (and per process after a fork)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lock_pid: int | None = None

    # --- set-up ---------------------------------------------------------------------------------------------
    def initialize(self, config: dict[str, Any]) -> None:
        """Create the schema and start from a clean state with ``config`` as the initial configuration."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            initial = {**DEFAULT_CONFIG, **validate_config(config)}
            conn.execute("BEGIN IMMEDIATE")
            for table in _DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            conn.execute("DELETE FROM config")
            conn.execute(
                "INSERT INTO config (id, data, initial, epoch, msgid_base) VALUES (1, ?, ?, 0, ?)",
                (json.dumps(initial), json.dumps(initial), _msgid_base()),
            )
            _seed(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        pid = os.getpid()
        if conn is None or getattr(self._local, "pid", None) != pid:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.pid = pid
        return conn

    def _file_lock(self) -> int:
        if self._lock_pid != os.getpid():
            self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = os.getpid()
        return self._lock_fd

    @contextmanager
    def write(self):
        """A write transaction, one at a time across threads and worker processes.

        Writers queue on a thread lock and an flock() of a lock file, which wake the next writer at once; SQLite's
        own busy handler would poll with sleeps of several milliseconds and cap throughput far below the HTTP path.
        """
        conn = self.connection()
        with self._thread_lock:
            fd = self._file_lock()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    # --- config -------------------------------------------------------------------------------------------
    def config(self) -> tuple[dict[str, Any], int]:
        row = self.connection().execute("SELECT data, epoch FROM config WHERE id = 1").fetchone()
        return json.loads(row[0]), row[1]

    def epoch(self) -> int:
        return self.connection().execute("SELECT epoch FROM config WHERE id = 1").fetchone()[0]

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        clean = validate_config(changes)
        with self.write() as conn:
            data = json.loads(conn.execute("SELECT data FROM config WHERE id = 1").fetchone()[0])
            data.update(clean)
            conn.execute("UPDATE config SET data = ? WHERE id = 1", (json.dumps(data),))
            if "faults" in clean:
                conn.execute("DELETE FROM counters WHERE name LIKE 'fault:%'")
        return data

    def reset(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything back to the start: no tokens, users, tags, calls; the initial config (plus ``config``)."""
        with self.write() as conn:
            initial = json.loads(conn.execute("SELECT initial FROM config WHERE id = 1").fetchone()[0])
            data = {**initial, **validate_config(config or {})}
            for table in _DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            conn.execute(
                "UPDATE config SET data = ?, epoch = epoch + 1, msgid_base = ? WHERE id = 1",
                (json.dumps(data), _msgid_base()),
            )
            _seed(conn)
        return data


def _msgid_base() -> int:
    # Unique across restarts of the fake: a million ids per second of wall-clock time.
    return int(time.time()) * 1_000_000


def _seed(conn: sqlite3.Connection) -> None:
    for tag_id, name in RESERVED_TAGS.items():
        conn.execute("INSERT INTO tags (id, name) VALUES (?, ?)", (tag_id, name))
    conn.execute("INSERT INTO counters (name, value) VALUES ('tag_id', 99)")


def next_counter(conn: sqlite3.Connection, name: str, step: int = 1) -> int:
    row = conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + ? "
        "RETURNING value",
        (name, step, step),
    ).fetchone()
    return row[0]


def next_msgid(conn: sqlite3.Connection) -> int:
    base = conn.execute("SELECT msgid_base FROM config WHERE id = 1").fetchone()[0]
    return base + next_counter(conn, "msgid")
