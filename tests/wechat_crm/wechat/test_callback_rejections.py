"""Each way a callback is refused: the right status, and nothing stored. Key rotation, outages, downgrades and
replays: test_callback_replays.py."""

import time
from urllib.parse import urlencode

import pytest

from accounts.models import Interaction, Subscriber
from tests.fixtures.wechat_payloads import build_message, sign_callback
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
