"""Hostile and odd callback bodies: each is refused with a 4xx and nothing stored, or stored safely; never a 5xx.

A 5xx makes WeChat retry the same body for ever (and a 500 would mean a crash), so even input our columns cannot
hold must be answered: too-long identifiers are refused, too-long free text is stored cut to its column.
"""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Interaction, Subscriber
from tests.fixtures.wechat_payloads import ACCOUNT, build_message, sign_callback

pytestmark = pytest.mark.django_db

NOW = "{now}"
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>oAttacker</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>oAttacker</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>"
)
XXE_PARAMETER = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % ext SYSTEM "http://127.0.0.1:1/evil.dtd"> %ext;]>'
    "<xml><ToUserName>gh</ToUserName></xml>"
)
SQL = "'; DROP TABLE accounts_subscriber; -- \" OR 1=1 /*"


def _post(wechat_callback, xml: str, mode: str):
    response = wechat_callback.post(xml, mode=mode)
    assert response.status_code < 500, (response.status_code, response.content[:200])
    return response


def _refused(response) -> None:
    assert 400 <= response.status_code < 500
    assert Interaction.objects.count() == 0


# --- refused -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE, XXE_PARAMETER], ids=["billion-laughs", "xxe", "xxe-param"])
def test_entity_declarations_are_refused(wechat_callback, xml, mode):
    _refused(_post(wechat_callback, xml, mode))


def test_a_10_mb_body_is_refused_unread(wechat_callback):
    query, _ = sign_callback(build_message("text"), mode="plain")
    response = wechat_callback.post_raw(query, b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>")
    assert response.status_code == 413
    assert Interaction.objects.count() == 0


@pytest.mark.parametrize("raw", [b"\xff\xfe\xfd", b"\xc3\x28", b"\xed\xa0\x80"], ids=["ff", "bad-2-byte", "surrogate"])
def test_invalid_utf8_is_refused(wechat_callback, raw):
    query, _ = sign_callback(build_message("text"), mode="plain")
    body = build_message("text", Content="PLACEHOLDER").encode().replace(b"PLACEHOLDER", raw)
    response = wechat_callback.post_raw(query, body)
    assert 400 <= response.status_code < 500
    assert Interaction.objects.count() == 0


@pytest.mark.parametrize("mode", ["plain", "safe"])
@pytest.mark.parametrize("missing", ["FromUserName", "ToUserName", "CreateTime", "MsgType"])
def test_missing_fields_are_refused(wechat_callback, missing, mode):
    _refused(_post(wechat_callback, build_message("text", **{missing: None}), mode))


@pytest.mark.parametrize(
    "fields",
    [
        {"CreateTime": "yesterday"},
        {"CreateTime": "99999999999999999999999"},
        {"CreateTime": "-99999999999999"},
        {"FromUserName": "o" * 65},
        {"FromUserName": SQL},
        {"MsgType": "t" * 100},
        {"MsgId": "9" * 100},
    ],
    ids=[
        "create-time-word",
        "create-time-huge",
        "create-time-negative",
        "openid-too-long",
        "openid-sql",
        "msgtype-too-long",
        "msgid-too-long",
    ],
)
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_wrong_types_and_impossible_identifiers_are_refused(wechat_callback, fields, mode):
    _refused(_post(wechat_callback, build_message("text", **fields), mode))


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\ufffe"], ids=["nul", "bell", "escape", "nonchar"])
@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_control_characters_are_refused_or_stored_safely(wechat_callback, char, mode):
    response = _post(wechat_callback, build_message("text", Content=f"a{char}b"), mode)
    if response.status_code == 200:
        assert Interaction.objects.get().content in (f"a{char}b", "ab")
    else:
        _refused(response)


# --- stored safely -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_10000_character_event_key_is_stored_cut_and_deduplicated_on_the_whole_key(wechat_callback, mode):
    key = "k" * 10_000
    xml = build_message("CLICK", EventKey=key, create_time=1_700_000_000)
    assert _post(wechat_callback, xml, mode).status_code == 200
    assert _post(wechat_callback, xml, mode).status_code == 200  # WeChat's retry: stored once
    stored = Interaction.objects.get()
    assert key.startswith(stored.event_key) and len(stored.event_key) == 2048
    assert stored.data["EventKey"] == key
    other = build_message("CLICK", EventKey=key[:-1] + "x", create_time=1_700_000_000)
    assert _post(wechat_callback, other, mode).status_code == 200
    assert Interaction.objects.count() == 2


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_huge_qr_scene_is_stored_cut(wechat_callback, mode):
    xml = build_message("subscribe", EventKey="qrscene_" + "s" * 5000, Ticket="t" * 1000)
    assert _post(wechat_callback, xml, mode).status_code == 200
    assert len(Subscriber.objects.get().source_scene) == 128
    assert len(Interaction.objects.get().ticket) == 256


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_long_free_text_fields_are_stored_cut(wechat_callback, mode):
    xml = build_message("link", Title="标" * 2000, Url="https://e.com/" + "p" * 5000, Description="d" * 5000)
    assert _post(wechat_callback, xml, mode).status_code == 200
    stored = Interaction.objects.get()
    assert (len(stored.title), len(stored.url), len(stored.description)) == (512, 2048, 5000)


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_emoji_and_rare_characters_round_trip(wechat_callback, mode):
    text = "👍🏽 你好 𠮷 \u200d👨‍👩‍👧 ﷽"
    assert _post(wechat_callback, build_message("text", Content=text), mode).status_code == 200
    assert Interaction.objects.get().content == text


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_sql_looking_strings_are_stored_verbatim(wechat_callback, mode):
    xml = build_message("CLICK", EventKey=SQL, create_time=1_700_000_001)
    assert _post(wechat_callback, build_message("text", Content=SQL), mode).status_code == 200
    assert _post(wechat_callback, xml, mode).status_code == 200
    assert set(Interaction.objects.values_list("content", flat=True)) == {SQL, ""}
    assert Interaction.objects.get(kind="click").event_key == SQL
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM accounts_subscriber")
        assert cursor.fetchone()[0] == 1


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_duplicated_content_is_stored_without_crashing(wechat_callback, mode):
    xml = build_message("text", Content="one").replace("</xml>", "<Content><![CDATA[two]]></Content></xml>")
    response = _post(wechat_callback, xml, mode)
    if response.status_code == 200:
        assert Interaction.objects.get().data["Content"] == ["one", "two"]
    else:
        _refused(response)


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_duplicated_sender_is_refused(wechat_callback, mode):
    xml = build_message("text").replace("</xml>", "<FromUserName><![CDATA[oOther]]></FromUserName></xml>")
    _refused(_post(wechat_callback, xml, mode))


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_nested_elements_and_words_where_numbers_are_expected_never_crash(wechat_callback, mode):
    xml = build_message("location", Location_X="north", Scale="big", Label="LABEL")
    xml = xml.replace("<Label><![CDATA[LABEL]]></Label>", "<Label><a>1</a><b>2</b></Label>")
    assert "<a>1</a>" in xml
    response = _post(wechat_callback, xml, mode)
    assert response.status_code == 200
    stored = Interaction.objects.get()
    assert (stored.latitude, stored.scale, stored.label) == (None, None, "")


def test_to_user_of_another_account_is_stored_as_sent(wechat_callback):
    assert _post(wechat_callback, build_message("text", to_user=ACCOUNT + "x"), "plain").status_code == 200
