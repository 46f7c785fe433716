import pytest

from tests.helpers import token_fetched


@pytest.fixture(autouse=True)
def _english(english):
    """Assertions read the English source strings (the product defaults to zh-hans)."""


@pytest.fixture
def fake_wechat(fake_wechat):
    """The fake WeChat server with a valid access token fetched and no calls recorded yet."""
    return token_fetched(fake_wechat)
