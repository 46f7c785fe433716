import pytest

from content import links, templating


@pytest.fixture(autouse=True)
def _fresh_link_cache():
    """TrackedLink ids and compiled templates are cached per process; each test has its own rows."""
    links.cache_clear()
    templating.cache_clear()
    yield
    links.cache_clear()
    templating.cache_clear()


@pytest.fixture
def fake_sending(fake, settings, db):
    """The fake WeChat for sending pushes: quiet hours off (tests run at any hour), a WeChat answer awaited 1 s."""
    from .push_factories import policy

    settings.WECHAT_HTTP_TIMEOUT = 1.0
    policy()
    return fake
