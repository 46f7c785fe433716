"""Prometheus' multiprocess mode under gunicorn: every scrape, whichever worker answers it, counts the callbacks
that all the workers answered (PROMETHEUS_MULTIPROC_DIR, README "Production")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

from accounts.models import Interaction
from tests.fixtures.wechat_payloads import build_message, sign_callback

from .servers import METRICS_TOKEN, ROOT, AppServer, app_env, post

CALLBACKS = 24
SCRAPES = 8


def _answered(metrics: str, status: str) -> float:
    match = re.search(rf'^wechat_crm_callback_seconds_count{{status="{status}"}} (\S+)$', metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_every_scrape_counts_the_callbacks_of_every_worker(transactional_db, tmp_path):
    app = AppServer(app_env(connection.settings_dict, PROMETHEUS_MULTIPROC_DIR=str(tmp_path)))
    app.start()
    try:
        # Four at a time: a sync worker busy with one leaves the next to the other worker. On a loaded machine one
        # worker may take a whole round: rounds go on (at most 10) until both have written samples.
        sent = 0
        for _ in range(10):
            payloads = [
                sign_callback(build_message("text", openid=f"oMetrics_{sent + i:04d}")) for i in range(CALLBACKS)
            ]
            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(lambda payload: post(app.url, *payload)[0], payloads))
            assert statuses == [200] * CALLBACKS
            sent += CALLBACKS
            if len(_pids(tmp_path)) == 2:
                break
        forged, _ = post(app.url, *sign_callback(build_message("text"), token="not-the-token"))
        assert forged == 403

        scrapes = []
        for _ in range(SCRAPES):  # gunicorn hands each connection to whichever worker accepts it first
            scrape = urllib.request.Request(app.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
            with urllib.request.urlopen(scrape, timeout=10) as response:
                scrapes.append(response.read().decode())
    finally:
        app.stop()

    assert Interaction.objects.count() == sent
    assert [_answered(text, "200") for text in scrapes] == [sent] * SCRAPES
    assert [_answered(text, "403") for text in scrapes] == [1] * SCRAPES
    assert len(_pids(tmp_path)) == 2, "both workers answered and wrote their samples"


def _pids(directory) -> set[str]:
    return {p.name.split("_")[-1] for p in directory.glob("histogram_*.db")}


def test_an_empty_variable_means_one_process_and_writes_no_files(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR= (empty, as in an env file) is unset, as the README's table says: prometheus_client
    would otherwise count in files written to the working directory, which no scrape reads."""
    code = (
        "import wechat_crm.metrics as m; m.CALLBACK_SECONDS.labels('200').observe(0.01); "
        "print(m.CALLBACK_SECONDS.labels('200')._sum.get())"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", "PYTHONPATH": str(ROOT)}

    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == 0.01
    assert list(tmp_path.iterdir()) == []
