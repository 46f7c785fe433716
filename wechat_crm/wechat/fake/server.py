"""The fake WeChat server: a lean WSGI app (no Django in the request path) and two ways to run it.

* :func:`serve` runs it under gunicorn with ``gthread`` workers (HTTP/1.1 keep-alive); the workers share the state
  through :class:`~.state.Store` (one SQLite file in WAL mode). ``manage.py fake_wechat`` calls it.
* :func:`serve_in_thread` runs it in a background thread of the current process, for quick unit tests.

WeChat's API lives under ``/cgi-bin/`` (see :mod:`.calls` for how a call is answered and :mod:`.api` for the
handlers); the control API for tests, the demo and benchmarks lives under ``/_fake/`` (see :mod:`.control_api`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from . import oauth
from .calls import JSON, WeChatApiMixin, _Drop, _dumps, _status_line
from .control_api import ControlApiMixin, _add_users
from .events import EventSender
from .state import Store


class FakeWeChatApp(WeChatApiMixin, ControlApiMixin):
    """WSGI app: WeChat's API (:class:`~.calls.WeChatApiMixin`) and the control API under ``/_fake/``
    (:class:`~.control_api.ControlApiMixin`, whose module lists its endpoints).

    Besides the API, WeChat's web authorisation page ``/connect/oauth2/authorize`` (see :mod:`.oauth`).
    """

    def __init__(self, store: Store, *, log_calls: bool = True, event_threads: int = 4) -> None:
        self.store = store
        self.log_calls = log_calls
        self.events = EventSender(store, threads=event_threads)

    # --- WSGI entry ---------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            if path.startswith("/_fake/"):
                status, headers, body = self.control(method, path, query, raw)
            elif path == oauth.AUTHORIZE_PATH and method in ("GET", "HEAD"):
                cfg, _epoch = self.store.config()
                status, headers, body = oauth.authorize(self.store, cfg, query, environ.get("HTTP_COOKIE", ""))
            elif path.startswith(("/cgi-bin/", "/datacube/", "/wxaapi/", "/sns/")):
                status, headers, body = self.wechat(method, path, query, raw, environ.get("CONTENT_TYPE", ""))
            else:
                status, headers, body = 404, JSON, _dumps({"errcode": -1, "errmsg": "not found"})
        except _Drop:
            sock = environ.get("gunicorn.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            status, headers, body = 504, [*JSON, ("Connection", "close")], b""
        start_response(_status_line(status), [*headers, ("Content-Length", str(len(body)))])
        return [body]


# --- running it -------------------------------------------------------------------------------------------------


def make_store(state_dir: str | os.PathLike | None, config: dict[str, Any]) -> Store:
    directory = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="fake-wechat-"))
    store = Store(directory / "state.sqlite3")
    store.initialize(config)
    return store


def serve(
    *,
    host: str = "127.0.0.1",
    port: int,
    workers: int = 2,
    threads: int = 16,
    state_dir: str | None = None,
    config: dict[str, Any] | None = None,
    log_calls: bool = True,
    generate_users: int = 0,
) -> None:
    """Run the fake under gunicorn (gthread workers, keep-alive) in the foreground until interrupted."""
    from gunicorn.app.base import BaseApplication

    store = make_store(state_dir, config or {})
    if generate_users:
        _add_users(store, {"generate": generate_users})
    app = FakeWeChatApp(store, log_calls=log_calls)

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "keepalive": 75,
                "timeout": 120,
                "graceful_timeout": 1,
                "loglevel": "warning",
                "accesslog": None,
                "proc_name": "fake_wechat",
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    print(f"fake WeChat listening on http://{host}:{port}/ (state in {store.path})", file=sys.stderr, flush=True)
    try:
        _Gunicorn().run()
    finally:
        if not state_dir:
            shutil.rmtree(Path(store.path).parent, ignore_errors=True)


def serve_in_thread(*, port: int = 0, config: dict[str, Any] | None = None, state_dir: str | None = None):
    """Start the fake in a daemon thread of this process; return (base URL ending in "/", server).

    Stop it with ``server.shutdown(); server.server_close()`` (which also removes a temporary state directory).
    Single process, HTTP/1.0: for quick unit tests, not for benchmarks.
    """
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

        def server_close(self) -> None:
            super().server_close()
            if not state_dir:
                shutil.rmtree(Path(store.path).parent, ignore_errors=True)

    class _QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    store = make_store(state_dir, config or {})
    server = make_server(
        "127.0.0.1", port, FakeWeChatApp(store, log_calls=False), server_class=_Server, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="fake-wechat", daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/", server
