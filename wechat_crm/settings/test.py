"""Settings for the test suite. DATABASE_URL / REDIS_URL come from the environment (.ci/run and `make test`)."""

import os
from urllib.parse import urlsplit, urlunsplit


def _redis_database_per_test_worker() -> None:
    """`make test` runs the suite in several pytest-xdist processes (gw0, gw1, ...). pytest-django gives each its own
    test database (test_<name>_gw0 ...); here each gets its own Redis database, the one REDIS_URL names plus 1 plus
    the worker's number, and so does everything it starts (its Celery worker, fake WeChat, gunicorn) through the
    environment. TEST_REDIS_URL_BASE keeps the URL as given: a process started with the rewritten URL, or with a
    REDIS_URL of a test's own (a private redis-server), keeps what it was given."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL", "")
    if not worker.startswith("gw") or not url:
        return
    base = os.environ.setdefault("TEST_REDIS_URL_BASE", url)
    if url != base:
        return
    parts = urlsplit(base)
    number = int(parts.path.strip("/") or 0) + 1 + int(worker[2:])
    os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=f"/{number}"))


_redis_database_per_test_worker()

from .base import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise warns about a missing STATIC_ROOT; tests never run collectstatic.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# Tests assert the product's source (English) messages. The product's default language stays zh-hans
# (settings/base.py); tests/wechat_crm/test_i18n.py checks the Chinese default explicitly with LANGUAGE_CODE="zh-hans".
LANGUAGE_CODE = "en"

# Tests never reach WeChat: a test that forgets the fake (the `fake_wechat` fixture) meets a closed port, and the fake
# server and the demo commands, which refuse a real WeChat API, run.
WECHAT_API_BASE_URL = env.str("WECHAT_API_BASE_URL", default="http://127.0.0.1:9/")  # noqa: F405
WECHAT_OAUTH_BASE_URL = env.str("WECHAT_OAUTH_BASE_URL", default="http://127.0.0.1:9/")  # noqa: F405

# The suite's clients share one address and many requests a minute: the product's rates would turn unrelated tests
# into 429s. tests/security/test_api_throttling.py puts the product's rates back (wechat_crm.throttling reads them
# on each request).
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": dict.fromkeys(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "100000/min"),  # noqa: F405
}

# A welcome that shows the nickname waits this long for the profile fetch (20 s in the product): the tests that wait
# it out (tests/conversations/test_welcome_profile.py) take 6 s, not 20. The tests' Celery worker reads the same.
JOURNEY_PROFILE_WAIT = env.float("JOURNEY_PROFILE_WAIT", default=6.0)  # noqa: F405
