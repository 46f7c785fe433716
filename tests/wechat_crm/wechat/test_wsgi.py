"""The callback as gunicorn serves it: wechat_crm.wsgi answers it without Django's middleware, every other path
with the whole chain."""

import pytest

from accounts.models import Interaction
from tests.fixtures.wechat_payloads import MODES, CallbackPoster, build_message, sign_callback
from wechat_crm.wechat import dispatch
from wechat_crm.wechat.replies import reply_text


@pytest.fixture
def wsgi_callback(wsgi_client, wechat_settings) -> CallbackPoster:
    return CallbackPoster(client=wsgi_client)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", MODES)
def test_a_message_through_the_wsgi_application_is_stored_once(wsgi_callback, mode):
    xml = build_message("text", Content="hello")

    first = wsgi_callback.post(xml, mode=mode)
    retry = wsgi_callback.post(xml, mode=mode)

    assert (first.status_code, first.content) == (200, b"success")
    assert (retry.status_code, retry.content) == (200, b"success")
    assert list(Interaction.objects.values_list("kind", "content")) == [("text", "hello")]


@pytest.mark.django_db
def test_a_passive_reply_through_the_wsgi_application_is_encrypted(wsgi_callback, monkeypatch):
    monkeypatch.setitem(dispatch.ROUTES, "text", dispatch.Route(replies=[lambda m: reply_text(m, "你好")]))

    response = wsgi_callback.post(build_message("text"), mode="safe")

    assert response.status_code == 200
    assert b"<Encrypt>" in response.content
    assert "<Content><![CDATA[你好]]></Content>" in wsgi_callback.reply_text(response)


@pytest.mark.django_db
def test_a_forged_message_through_the_wsgi_application_is_refused(wsgi_callback):
    query, body = sign_callback(build_message("text"), token="not-the-token")

    response = wsgi_callback.post_raw(query, body)

    assert response.status_code == 403
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_the_echo_check_through_the_wsgi_application(wsgi_callback):
    response = wsgi_callback.get_echo("echo-123")

    assert (response.status_code, response.content) == (200, b"echo-123")


@pytest.mark.django_db
def test_other_pages_keep_the_middleware(wsgi_client):
    response = wsgi_client.get("/admin/login/")

    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"  # clickjacking protection
    assert "csrftoken" in response.headers.get("set-cookie", "")  # CSRF middleware
