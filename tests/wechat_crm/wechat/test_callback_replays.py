"""The callback across key rotation, outages (database, Redis), downgrades to plain mode and replays: what is
refused, what is stored once."""

import pytest
from django.db import connection

from accounts.models import Interaction, Subscriber
from tests.fixtures.wechat_payloads import PREVIOUS_AES_KEY, build_message, sign_callback
from wechat_crm.wechat import crypto
from wechat_crm.wechat import xml as wxml

from .test_callback_rejections import assert_nothing_stored

pytestmark = pytest.mark.django_db

# --- Key rotation ---


def test_a_message_encrypted_with_the_previous_key_is_accepted_during_rotation(wechat_callback, settings):
    settings.WECHAT_ENCODING_AES_KEY_PREVIOUS = PREVIOUS_AES_KEY

    response = wechat_callback.post(build_message("text", Content="sent before the rotation"), aes_key=PREVIOUS_AES_KEY)

    assert response.status_code == 200
    assert Interaction.objects.get().content == "sent before the rotation"


def test_a_reply_during_rotation_is_encrypted_with_the_key_the_message_came_with(
    wechat_callback, settings, monkeypatch
):
    from wechat_crm.wechat import dispatch

    settings.WECHAT_ENCODING_AES_KEY_PREVIOUS = PREVIOUS_AES_KEY
    reply = "<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>"
    monkeypatch.setitem(dispatch.ROUTES, "text", dispatch.Route(replies=[lambda message: reply]))

    response = wechat_callback.post(build_message("text"), aes_key=PREVIOUS_AES_KEY)

    envelope = wxml.parse(response.content)
    assert crypto.MessageCipher(PREVIOUS_AES_KEY).decrypt(envelope["Encrypt"], "wx5823bf96d3bd56c7").decode() == reply


def test_a_message_encrypted_with_an_unknown_key_is_refused(wechat_callback):
    response = wechat_callback.post(build_message("text"), aes_key=PREVIOUS_AES_KEY)

    assert response.status_code == 400
    assert_nothing_stored()


# --- Outages ---


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_answers_503_so_that_wechat_retries(wechat_callback):
    xml = build_message("text")
    original_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = "1"  # nothing listens there: every query fails to connect
    try:
        response = wechat_callback.post(xml, mode="safe")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original_port

    assert response.status_code == 503
    assert response.content != b"success"
    assert_nothing_stored()
    assert wechat_callback.post(xml, mode="safe").status_code == 200  # WeChat's retry after the outage
    assert Interaction.objects.count() == 1


def test_other_methods_are_not_allowed(wechat_callback):
    query, _ = sign_callback(build_message("text"), mode="plain")

    response = wechat_callback.client.put(wechat_callback.url(query), b"")

    assert response.status_code == 405


# --- Downgrades and replays ---


@pytest.mark.parametrize("allow_plain", [False, True])
def test_a_plain_request_is_refused_when_an_aes_key_is_configured(wechat_callback, settings, allow_plain):
    """With an EncodingAESKey, a request without encrypt_type=aes is a downgrade: its signature covers no byte of the
    body. Refused unless plain mode is chosen (WeChat's compatible mode while switching)."""
    settings.WECHAT_ALLOW_PLAIN_MODE = allow_plain

    response = wechat_callback.post(build_message("text", Content="forged"), mode="plain")

    if allow_plain:
        assert response.status_code == 200 and Interaction.objects.count() == 1
    else:
        assert response.status_code == 403
        assert_nothing_stored()
        assert wechat_callback.post(build_message("text", Content="real"), mode="safe").status_code == 200
        assert wechat_callback.post(build_message("text", Content="real 2"), mode="compat").status_code == 200
        assert Interaction.objects.count() == 2


def test_without_an_aes_key_plain_mode_is_the_mode(wechat_callback, settings):
    settings.WECHAT_ENCODING_AES_KEY = ""
    settings.WECHAT_ALLOW_PLAIN_MODE = False
    assert wechat_callback.post(build_message("text"), mode="plain").status_code == 200


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_the_same_timestamp_and_nonce_with_the_same_body_is_a_retry_stored_once(wechat_callback, mode):
    query, body = sign_callback(build_message("text", Content="hello"), mode=mode)

    first = wechat_callback.post_raw(query, body)
    again = wechat_callback.post_raw(dict(query), body)

    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert Interaction.objects.count() == 1


def test_a_signed_url_replayed_with_another_body_is_refused(wechat_callback):
    """A signed plain-mode URL seen once (in a proxy log, say) cannot carry another body within the replay window."""
    query, body = sign_callback(build_message("text", Content="hello", openid="oRealUser"), mode="plain")
    assert wechat_callback.post_raw(query, body).status_code == 200

    _query, forged = sign_callback(build_message("subscribe", openid="oSomeoneElse"), mode="plain")
    response = wechat_callback.post_raw(dict(query), forged)

    assert response.status_code == 403
    assert list(Interaction.objects.values_list("subscriber__openid", flat=True)) == ["oRealUser"]
    assert not Subscriber.objects.filter(openid="oSomeoneElse").exists()


def test_a_replayed_url_with_a_body_that_does_not_parse_is_refused(wechat_callback):
    """The replay check's answer is read after the body is parsed: a forged body that does not parse gets its 400,
    and the pair still belongs to the first body."""
    query, body = sign_callback(build_message("text", Content="hello", openid="oRealUser"), mode="plain")
    assert wechat_callback.post_raw(query, body).status_code == 200

    assert wechat_callback.post_raw(dict(query), b"<xml><not closed").status_code == 400
    assert wechat_callback.post_raw(dict(query), body).status_code == 200  # WeChat's retry, still answered
    _query, forged = sign_callback(build_message("text", Content="forged", openid="oRealUser"), mode="plain")
    assert wechat_callback.post_raw(dict(query), forged).status_code == 403
    assert list(Interaction.objects.values_list("content", flat=True)) == ["hello"]


def test_the_replay_window_is_kept_in_redis_with_its_expiry(wechat_callback, settings):
    """Plain mode: one key per (timestamp, nonce), holding the body's digest, expiring after the window (both clock
    skews)."""
    import hashlib

    from wechat_crm.wechat.ratelimit import redis_client
    from wechat_crm.wechat.replay import REPLAY_KEY_PREFIX

    client = redis_client()
    if client is None:
        pytest.skip("REDIS_URL is not set: the pairs are kept in Django's cache")
    settings.WECHAT_ALLOW_PLAIN_MODE = True
    query, body = sign_callback(build_message("text", Content="hello"), mode="plain")
    assert wechat_callback.post_raw(query, body).status_code == 200

    pair = hashlib.sha256(f"{query['timestamp']}\x00{query['nonce']}".encode()).hexdigest()[:40]
    assert client.get(REPLAY_KEY_PREFIX + pair) == hashlib.sha256(body).hexdigest()[:40].encode()
    assert 0 < client.ttl(REPLAY_KEY_PREFIX + pair) <= 2 * settings.WECHAT_CALLBACK_MAX_CLOCK_SKEW + 1


@pytest.mark.parametrize("mode", ["safe", "compat"])
def test_in_safe_mode_a_signed_url_replayed_with_another_body_fails_its_msg_signature(wechat_callback, mode):
    """msg_signature covers the encrypted message: the pair needs no memory (no round trip to Redis), and another
    body under the same signed URL is refused all the same, nothing stored."""
    import hashlib

    from wechat_crm.wechat.ratelimit import redis_client
    from wechat_crm.wechat.replay import REPLAY_KEY_PREFIX

    query, body = sign_callback(build_message("text", Content="hello", openid="oRealUser"), mode=mode)
    assert wechat_callback.post_raw(query, body).status_code == 200
    _query, forged = sign_callback(build_message("subscribe", openid="oSomeoneElse"), mode=mode)

    assert wechat_callback.post_raw(dict(query), forged).status_code == 403
    assert wechat_callback.post_raw(dict(query), body).status_code == 200  # WeChat's retry, stored once
    assert list(Interaction.objects.values_list("subscriber__openid", flat=True)) == ["oRealUser"]
    assert not Subscriber.objects.filter(openid="oSomeoneElse").exists()
    client = redis_client()
    pair = hashlib.sha256(f"{query['timestamp']}\x00{query['nonce']}".encode()).hexdigest()[:40]
    assert client is None or not client.exists(REPLAY_KEY_PREFIX + pair)


def test_the_callback_answers_and_stores_when_redis_is_unreachable(wechat_callback, settings, caplog):
    """Redis down: the replay check is skipped (logged), the message is stored once, a retry is still deduplicated."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.WECHAT_ALLOW_PLAIN_MODE = True
    query, body = sign_callback(build_message("text", Content="hello"), mode="plain")

    assert wechat_callback.post_raw(query, body).status_code == 200
    assert wechat_callback.post_raw(dict(query), body).status_code == 200

    assert Interaction.objects.count() == 1
    assert "replay check skipped" in caplog.text
