import pytest

from tests.fixtures.wechat_payloads import AES_KEY, CallbackPoster


@pytest.fixture(autouse=True)
def _english(english):
    """Assertions read the English source strings (the product defaults to zh-hans)."""


@pytest.fixture
def poster(client, settings) -> CallbackPoster:
    settings.WECHAT_ENCODING_AES_KEY = AES_KEY
    settings.WECHAT_ENCODING_AES_KEY_PREVIOUS = ""
    return CallbackPoster(client=client, token=settings.WECHAT_TOKEN, app_id=settings.WECHAT_APP_ID, aes_key=AES_KEY)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="operator", password="pw", email="o@example.com")
    client.force_login(user)
    return client


@pytest.fixture
def fake_wechat(fake_wechat):
    """The fake WeChat server with a valid access token fetched and no calls recorded yet."""
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import WeChatInvalidToken

    try:
        get_client().tag.get()
    except WeChatInvalidToken:
        get_client().tag.get()
    fake_wechat.clear_calls()
    return fake_wechat
