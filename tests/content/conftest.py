import pytest


@pytest.fixture
def fake_sending(fake, settings, db):
    """The fake WeChat for sending pushes: quiet hours off (tests run at any hour), a WeChat answer awaited 1 s."""
    from .push_factories import policy

    settings.WECHAT_HTTP_TIMEOUT = 1.0
    policy()
    return fake
