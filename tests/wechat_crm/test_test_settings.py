"""The test settings give each pytest-xdist process its own Redis database (make test runs three), and leave alone a
REDIS_URL that a test gave a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures.embedded import ROOT


def _redis_url(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in {"PYTEST_XDIST_WORKER", "TEST_REDIS_URL_BASE"}}
    code = "import wechat_crm.settings.test as s; print(s.REDIS_URL)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env}, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("worker", "database"), [("gw0", 5), ("gw2", 7)])
def test_each_xdist_process_takes_the_given_database_plus_one_plus_its_number(worker, database):
    assert _redis_url(REDIS_URL="redis://127.0.0.1:6379/4", PYTEST_XDIST_WORKER=worker) == (
        f"redis://127.0.0.1:6379/{database}"
    )


def test_a_process_started_by_a_test_keeps_the_url_it_was_given():
    rewritten = _redis_url(REDIS_URL="redis://127.0.0.1:6379/5", TEST_REDIS_URL_BASE="redis://127.0.0.1:6379/4",
                           PYTEST_XDIST_WORKER="gw0")  # fmt: skip
    assert rewritten == "redis://127.0.0.1:6379/5"  # its parent's database, not 6
    private = _redis_url(REDIS_URL="redis://127.0.0.1:41234/0", TEST_REDIS_URL_BASE="redis://127.0.0.1:6379/4",
                         PYTEST_XDIST_WORKER="gw1")  # fmt: skip
    assert private == "redis://127.0.0.1:41234/0"  # a redis-server of the test's own


def test_without_xdist_the_url_is_the_one_given():
    assert _redis_url(REDIS_URL="redis://127.0.0.1:6379/4") == "redis://127.0.0.1:6379/4"
