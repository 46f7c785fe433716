"""Headless Debian Chromium (/usr/bin/chromium) driven by Playwright's Python package, for the admin's browser tests.

Without Chromium the tests skip on a developer's machine, and FAIL in CI (CI=true), where `.ci/run` installs it.
Every test saves screenshots of the pages it walks through under var/screenshots/ (printed in the output)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "screenshots"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}: in CI the browser tests must run (.ci/run installs Chromium)", pytrace=False)
    pytest.skip(reason)


def require_chromium() -> None:
    """Skip (fail in CI) unless Chromium and Playwright are there: call it before starting anything expensive."""
    if not shutil.which(CHROMIUM):
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (requirements-dev.txt)")


@pytest.fixture
def browser():
    require_chromium()
    from playwright import sync_api

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the fixtures happen outside it.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # The ORM calls made while Playwright's loop ran have a connection of their own: closed here, or the
            # test database could not be dropped at the end of the session ("being accessed by other users").
            connections.close_all()


@pytest.fixture
def screenshot(request):
    """`screenshot(page, "name")` saves var/screenshots/<test>/<nn>-<name>.png and prints where."""
    folder = SCREENSHOTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    taken = []

    def take(page, name: str) -> Path:
        path = folder / f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        print(f"screenshot: {path}")
        return path

    return take
