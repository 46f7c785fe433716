"""Shared test set-up. Fixtures live in tests/fixtures/ and are registered here."""

import pytest

pytest_plugins = [
    "tests.fixtures.wechat_payloads",
    "tests.fixtures.fake_wechat",
    "tests.fixtures.celery_worker",
]


@pytest.fixture(scope="session")
def celery_worker_extra_env(fake_wechat_server) -> dict[str, str]:
    """Workers talk to the session's fake WeChat server; failed profile fetches retry within seconds."""
    return {"WECHAT_API_BASE_URL": fake_wechat_server.url, "PROFILE_FETCH_RETRY_MAX_DELAY": "3"}
