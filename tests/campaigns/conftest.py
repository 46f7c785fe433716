import pytest

from tests.fixtures.wechat_payloads import AES_KEY, CallbackPoster


@pytest.fixture
def poster(client, settings) -> CallbackPoster:
    """Signed callbacks with the settings the worker also has (its WeChat appid and token are the defaults)."""
    settings.WECHAT_ENCODING_AES_KEY = AES_KEY
    settings.WECHAT_ENCODING_AES_KEY_PREVIOUS = ""
    return CallbackPoster(client=client, token=settings.WECHAT_TOKEN, app_id=settings.WECHAT_APP_ID, aes_key=AES_KEY)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="operator", password="pw", email="o@example.com")
    client.force_login(user)
    return client
