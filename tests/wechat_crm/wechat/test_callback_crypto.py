"""WeChat's official WXBizMsgCrypt sample, and our cipher against it."""

import pytest

from accounts.models import Interaction
from wechat_crm.wechat import crypto
from wechat_crm.wechat import xml as wxml

# The sample published with WeChat's message encryption SDK (WXBizMsgCrypt, "测试解密接口").
SAMPLE_TOKEN = "spamtest"
SAMPLE_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SAMPLE_APP_ID = "wx2c2769f8efd9abc2"
SAMPLE_TIMESTAMP = "1409735669"
SAMPLE_NONCE = "1320562132"
SAMPLE_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9"
    "FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3y"
    "t+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6"
    "h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
SAMPLE_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n"
    "</xml>"
)


def test_official_sample_signature_verifies():
    assert crypto.signature(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT) == SAMPLE_MSG_SIGNATURE
    assert crypto.signature_matches(SAMPLE_MSG_SIGNATURE, SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT)
    assert not crypto.signature_matches(
        SAMPLE_MSG_SIGNATURE, SAMPLE_TOKEN, SAMPLE_TIMESTAMP, "1320562133", SAMPLE_ENCRYPT
    )


def test_official_sample_decrypts_to_its_documented_plaintext():
    plain = crypto.MessageCipher(SAMPLE_AES_KEY).decrypt(SAMPLE_ENCRYPT, SAMPLE_APP_ID)

    assert plain.decode("utf-8") == SAMPLE_PLAINTEXT


def test_official_sample_is_refused_for_another_appid():
    with pytest.raises(crypto.DecryptionError):
        crypto.MessageCipher(SAMPLE_AES_KEY).decrypt(SAMPLE_ENCRYPT, "wx_some_other_app")


def test_our_encryption_is_what_wechatpy_decrypts():
    from wechatpy.crypto import WeChatCrypto

    xml = "<xml><Content><![CDATA[你好]]></Content></xml>"
    encrypted = crypto.MessageCipher(SAMPLE_AES_KEY).encrypt(xml, SAMPLE_APP_ID)
    envelope = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    signature = crypto.signature(SAMPLE_TOKEN, "1", "2", encrypted)

    decrypted = WeChatCrypto(SAMPLE_TOKEN, SAMPLE_AES_KEY, SAMPLE_APP_ID).decrypt_message(envelope, signature, "1", "2")

    assert decrypted == xml


@pytest.mark.parametrize(
    "ciphertext",
    ["not base64 at all!", "", "QUJD", SAMPLE_ENCRYPT[:-8] + "AAAAAAA=", SAMPLE_ENCRYPT[:44]],
)
def test_damaged_ciphertext_is_a_decryption_error(ciphertext):
    with pytest.raises(crypto.DecryptionError):
        crypto.MessageCipher(SAMPLE_AES_KEY).decrypt(ciphertext, SAMPLE_APP_ID)


@pytest.mark.django_db
def test_official_sample_is_stored_through_the_endpoint(client, settings):
    settings.WECHAT_TOKEN = SAMPLE_TOKEN
    settings.WECHAT_APP_ID = SAMPLE_APP_ID
    settings.WECHAT_ENCODING_AES_KEY = SAMPLE_AES_KEY
    settings.WECHAT_ENCODING_AES_KEY_PREVIOUS = ""
    settings.WECHAT_CALLBACK_MAX_CLOCK_SKEW = 10**10  # the sample was signed in 2014
    query = (
        f"signature={crypto.signature(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE)}&timestamp={SAMPLE_TIMESTAMP}"
        f"&nonce={SAMPLE_NONCE}&openid=oyORnuP8q7ou2gfYjqLzSIWZf0rs&encrypt_type=aes"
        f"&msg_signature={SAMPLE_MSG_SIGNATURE}"
    )
    body = wxml.render({"ToUserName": "gh_10f6c3c3ac5a", "Encrypt": SAMPLE_ENCRYPT})

    response = client.generic("POST", f"/wechat/callback/?{query}", body, content_type="text/xml")

    assert response.status_code == 200
    assert response.content == b"success"
    interaction = Interaction.objects.select_related("subscriber").get()
    assert (interaction.kind, interaction.content, interaction.msg_id) == ("text", "abcdteT", "6054768590064713728")
    assert interaction.subscriber.openid == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert interaction.raw_xml == SAMPLE_PLAINTEXT
    assert int(interaction.created_at.timestamp()) == 1409735668
