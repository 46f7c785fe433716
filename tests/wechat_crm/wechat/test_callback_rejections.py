"""Each way a callback is refused: the right status, and nothing stored."""

import time
from urllib.parse import urlencode

import pytest
from django.db import connection

from accounts.models import Interaction, Subscriber
from tests.fixtures.wechat_payloads import PREVIOUS_AES_KEY, build_message, sign_callback
from wechat_crm.wechat import crypto
from wechat_crm.wechat import xml as wxml

pytestmark = pytest.mark.django_db

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE xml [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><ToUserName>gh_test_account</ToUserName><FromUserName>oAttacker</FromUserName><CreateTime>{now}</CreateTime>
<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh_test_account</ToUserName><FromUserName>oAttacker</FromUserName><CreateTime>{now}</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>"""


def assert_nothing_stored():
    assert Interaction.objects.count() == 0
    assert Subscriber.objects.count() == 0


# --- GET verification ---


def test_get_with_a_valid_signature_echoes_echostr(wechat_callback):
    response = wechat_callback.get_echo("echo_8273645")

    assert response.status_code == 200
    assert response.content == b"echo_8273645"


def test_get_with_a_wrong_signature_is_forbidden(wechat_callback):
    response = wechat_callback.get_echo("echo_8273645", token="not_our_token")

    assert response.status_code == 403
    assert b"echo_8273645" not in response.content


def test_get_without_a_signature_is_forbidden(client, wechat_settings):
    response = client.get("/wechat/callback/?echostr=abc&timestamp=1&nonce=2")

    assert response.status_code == 403


def test_get_with_a_stale_timestamp_is_forbidden(wechat_callback):
    response = wechat_callback.get_echo("echo", timestamp=int(time.time()) - 301)

    assert response.status_code == 403


# --- POST signatures and clock ---


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_post_with_a_wrong_signature_is_forbidden(wechat_callback, mode):
    query, body = sign_callback(build_message("text"), mode=mode, token="not_our_token")

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 403
    assert_nothing_stored()


def test_post_with_a_wrong_msg_signature_is_forbidden(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="safe")
    query["msg_signature"] = crypto.signature("test_token", query["timestamp"], query["nonce"], "other ciphertext")

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 403
    assert_nothing_stored()


def test_safe_mode_without_msg_signature_is_forbidden(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="safe")
    del query["msg_signature"]

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 403
    assert_nothing_stored()


@pytest.mark.parametrize("offset", [-301, 301, -(10**6)])
def test_post_with_a_timestamp_more_than_300_seconds_away_is_forbidden(wechat_callback, offset):
    response = wechat_callback.post(build_message("text"), mode="safe", timestamp=int(time.time()) + offset)

    assert response.status_code == 403
    assert_nothing_stored()


def test_post_with_a_timestamp_within_300_seconds_is_accepted(wechat_callback):
    response = wechat_callback.post(build_message("text"), mode="safe", timestamp=int(time.time()) - 290)

    assert response.status_code == 200
    assert Interaction.objects.count() == 1


def test_post_with_a_non_numeric_timestamp_is_forbidden(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="plain")
    query["timestamp"] = "yesterday"
    query["signature"] = crypto.signature("test_token", "yesterday", query["nonce"])

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 403
    assert_nothing_stored()


# --- Size ---


def test_body_over_64_kib_is_too_large(wechat_callback):
    xml = build_message("text", Content="x" * (64 * 1024))

    response = wechat_callback.post(xml, mode="plain")

    assert response.status_code == 413
    assert_nothing_stored()


def test_declared_length_over_64_kib_is_refused_before_reading(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="plain")

    response = wechat_callback.client.generic(
        "POST", wechat_callback.url(query), body, content_type="text/xml", CONTENT_LENGTH=str(64 * 1024 + 1)
    )

    assert response.status_code == 413
    assert_nothing_stored()


def test_text_just_under_the_limit_is_accepted(wechat_callback):
    xml = build_message("text", Content="x" * (60 * 1024))

    response = wechat_callback.post(xml, mode="plain")

    assert response.status_code == 200
    assert len(Interaction.objects.get().content) == 60 * 1024


# --- Malformed input ---


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<xml><ToUserName>gh</ToUserName>",
        b"<xml><a></b></xml>",
        "<xml>\udcff</xml>".encode("utf-8", "surrogatepass"),
    ],
)
def test_malformed_xml_is_a_bad_request(wechat_callback, body):
    query, _ = sign_callback(build_message("text"), mode="plain")

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 400
    assert_nothing_stored()


def test_malformed_xml_inside_the_ciphertext_is_a_bad_request(wechat_callback):
    response = wechat_callback.post("<xml><ToUserName>gh</ToUserName>", mode="safe")

    assert response.status_code == 400
    assert_nothing_stored()


@pytest.mark.parametrize("missing", ["FromUserName", "ToUserName", "CreateTime", "MsgType"])
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_missing_required_field_is_a_bad_request(wechat_callback, missing, mode):
    xml = build_message("text", **{missing: None})

    response = wechat_callback.post(xml, mode=mode)

    assert response.status_code == 400
    assert_nothing_stored()


def test_an_event_without_its_event_name_is_a_bad_request(wechat_callback):
    response = wechat_callback.post(build_message("subscribe", Event=None), mode="safe")

    assert response.status_code == 400
    assert_nothing_stored()


def test_a_non_numeric_create_time_is_a_bad_request(wechat_callback):
    response = wechat_callback.post(build_message("text", CreateTime="noon"), mode="safe")

    assert response.status_code == 400
    assert_nothing_stored()


def test_safe_mode_without_encrypt_is_a_bad_request(wechat_callback):
    query, _ = sign_callback(build_message("text"), mode="safe")
    body = wxml.render({"ToUserName": "gh_test_account"}).encode()

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 400
    assert_nothing_stored()


def test_a_damaged_ciphertext_is_a_bad_request(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="safe")
    envelope = wxml.parse(body)
    damaged = envelope["Encrypt"][:-10] + "AAAAAAAAA="
    query["msg_signature"] = crypto.signature("test_token", query["timestamp"], query["nonce"], damaged)

    response = wechat_callback.post_raw(query, wxml.render({**envelope, "Encrypt": damaged}).encode())

    assert response.status_code == 400
    assert_nothing_stored()


def test_a_ciphertext_for_another_appid_is_a_bad_request(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="safe", app_id="wx_another_app")

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 400
    assert_nothing_stored()


def test_safe_mode_without_a_configured_key_is_a_bad_request(wechat_callback, settings):
    settings.WECHAT_ENCODING_AES_KEY = ""

    response = wechat_callback.post(build_message("text"), mode="safe")

    assert response.status_code == 400
    assert_nothing_stored()


# --- Entities and DTDs ---


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_entity_and_dtd_payloads_are_refused(wechat_callback, payload, mode):
    response = wechat_callback.post(payload.format(now=int(time.time())), mode=mode)

    assert response.status_code == 400
    assert_nothing_stored()


def test_a_dtd_around_a_validly_signed_envelope_is_refused(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="safe")
    encrypted = wxml.parse(body)["Encrypt"]
    wrapped = (
        '<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY to "gh_test_account">]>\n'
        f"<xml><ToUserName>&to;</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    )

    response = wechat_callback.post_raw(query, wrapped.encode())

    assert response.status_code == 400
    assert_nothing_stored()


@pytest.mark.parametrize(
    "layout",
    [
        "<xml>\n  <ToUserName><![CDATA[gh_test_account]]></ToUserName>\n  <Encrypt><![CDATA[{e}]]></Encrypt>\n</xml>\n",
        "<xml><Encrypt>{e}</Encrypt><ToUserName>gh_test_account</ToUserName><AgentID>1</AgentID></xml>",
        '<?xml version="1.0" encoding="utf-8"?><xml><Encrypt><![CDATA[{e}]]></Encrypt></xml>',
    ],
    ids=["indented", "other-order-and-fields", "declaration"],
)
def test_safe_mode_envelopes_laid_out_otherwise_are_accepted(wechat_callback, layout):
    query, body = sign_callback(build_message("text", MsgId="4242"), mode="safe")
    encrypted = wxml.parse(body)["Encrypt"]

    response = wechat_callback.post_raw(query, layout.format(e=encrypted).encode())

    assert response.status_code == 200
    assert Interaction.objects.get().msg_id == "4242"


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


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_xml_nested_deeper_than_the_limit_is_refused_with_400(wechat_callback, mode):
    deep = "<a>" * 5000 + "1" + "</a>" * 5000
    xml = build_message("text").replace("</xml>", f"<Extra>{deep}</Extra></xml>")

    response = wechat_callback.post(xml, mode=mode)

    assert response.status_code == 400
    assert_nothing_stored()
    assert wxml.parse("<xml>" + "<a>" * (wxml.MAX_DEPTH - 1) + "1" + "</a>" * (wxml.MAX_DEPTH - 1) + "</xml>")


def test_too_many_query_parameters_is_a_bad_request(wechat_callback, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 20
    query, body = sign_callback(build_message("text"), mode="safe")
    query.update({f"extra{i}": "x" for i in range(30)})

    response = wechat_callback.post_raw(query, body)

    assert response.status_code == 400
    assert_nothing_stored()


def test_a_repeated_query_parameter_counts_its_last_value(wechat_callback):
    query, body = sign_callback(build_message("text"), mode="safe")
    url = f"{wechat_callback.path}?nonce=first&{urlencode(query)}"

    response = wechat_callback.client.generic("POST", url, body, content_type="text/xml")

    assert response.status_code == 200
    assert Interaction.objects.count() == 1
