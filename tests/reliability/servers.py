"""Real servers a reliability test can stop and start: a private redis-server and the app under gunicorn."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.fixtures.celery_worker import _database_url
from tests.fixtures.fake_wechat import free_port
from tests.fixtures.wechat_payloads import AES_KEY, APP_ID, TOKEN
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


class RedisServer:
    """redis-server on a free port of its own (the shared one on 6379 is never touched)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_for(lambda: _pings(client), timeout=20, message="redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


METRICS_TOKEN = "reliability-metrics-token"


def app_env(connection_settings: dict, **extra: str) -> dict[str, str]:
    """The environment of a subprocess serving the test database with the payload fixtures' WeChat account."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.test",
        "DATABASE_URL": _database_url(connection_settings) if connection_settings else "",
        "DATABASE_CONN_MAX_AGE": "0",
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_ENCODING_AES_KEY": AES_KEY,
        "METRICS_TOKEN": METRICS_TOKEN,  # the details of /healthz need it
        **extra,
    }


class AppServer:
    """The product under gunicorn (2 sync workers), as in production."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="gunicorn-test-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [gunicorn, "wechat_crm.wsgi:application", "--workers", "2", "--bind", f"127.0.0.1:{self.port}",
             "--timeout", "60", "--graceful-timeout", "5"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited:\n{self.log()}")
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=5)
                return True
            except urllib.error.HTTPError:
                return True  # answering, even if something it checks is down
            except OSError:
                return False

        wait_for(up, timeout=90, interval=0.2, message="gunicorn did not start")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def post(url: str, query: dict[str, str], body: bytes, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """POST as WeChat does: it gives up after 5 seconds (urllib raises then, failing the test)."""
    from urllib.parse import urlencode

    request = urllib.request.Request(
        f"{url}/wechat/callback/?{urlencode(query)}", data=body, headers={"Content-Type": "text/xml"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_seconds(seconds: float) -> None:
    time.sleep(seconds)


PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] if Path("/usr/lib/postgresql").exists() else None


class PostgresServer:
    """A PostgreSQL instance of the test's own (initdb in a temporary directory, trust auth, a free port), so that
    it can be stopped and restarted without disturbing the shared cluster. Runs as the postgres user when root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.dir / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=check)

    def init(self) -> None:
        shutil.chown(self.dir, "postgres") if os.geteuid() == 0 else None
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
