"""How WeChat signs, encrypts and shapes the XML it posts to an account's callback URL.

Used by the fake server (job-finish events) and the subscriber simulator (messages and events). This is WeChat's
side of the protocol, kept apart from our own ``wechat_crm.wechat.crypto`` on purpose: the fake must not share code
with the product it stands in for, or a bug in one would hide in the other.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from wechatpy.crypto import PrpCrypto, WeChatCrypto


def signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(str(p) for p in parts)).encode()).hexdigest()  # noqa: S324 - WeChat's scheme


def nonce() -> str:
    return str(secrets.randbelow(10**10))


def _cdata(value: str) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_xml(fields: Mapping[str, object]) -> str:
    """Render a message the way WeChat does: strings in CDATA, numbers bare, dicts nested, lists repeated."""
    out = ["<xml>"]
    for name, values in fields.items():
        for value in values if isinstance(values, list) else [values]:  # a list repeats the element
            if isinstance(value, Mapping):
                inner = render_xml(value)[5:-6]
                out.append(f"<{name}>{inner}</{name}>")
            elif isinstance(value, bool):
                out.append(f"<{name}>{int(value)}</{name}>")
            elif isinstance(value, int | float):
                out.append(f"<{name}>{value}</{name}>")
            else:
                out.append(f"<{name}>{_cdata(value)}</{name}>")
    out.append("</xml>")
    return "".join(out)


def encrypt(plain_xml: str, *, aes_key: str, appid: str) -> str:
    key = base64.b64decode(aes_key + "=")
    return PrpCrypto(key).encrypt(plain_xml, appid).decode()


def decrypt_reply(body: bytes | str, *, token: str, aes_key: str, appid: str, timestamp: str, nonce_: str) -> str:
    """Decrypt a passive reply in safe mode (``<Encrypt>`` + ``<MsgSignature>``), as WeChat does."""
    import xmltodict

    parsed = xmltodict.parse(body)["xml"]
    crypto = WeChatCrypto(token, aes_key, appid)
    return crypto.decrypt_message(parsed, parsed.get("MsgSignature", ""), parsed.get("TimeStamp", timestamp), nonce_)


def sign_callback(
    plain_xml: str,
    *,
    token: str,
    aes_key: str = "",
    appid: str = "",
    original_id: str = "",
    openid: str = "",
    timestamp: int | None = None,
) -> tuple[dict[str, str], bytes]:
    """Return (query parameters, body) for a POST to the callback URL, exactly as WeChat sends it.

    Plain mode: ``signature``, ``timestamp``, ``nonce`` (and ``openid``) with the XML as body.
    Safe mode (an EncodingAESKey is set): also ``encrypt_type=aes`` and ``msg_signature``; the body holds only
    ``ToUserName`` and ``Encrypt``.
    """
    ts = str(timestamp or int(time.time()))
    nc = nonce()
    params = {"signature": signature(token, ts, nc), "timestamp": ts, "nonce": nc}
    if openid:
        params["openid"] = openid
    if not aes_key:
        return params, plain_xml.encode()
    enc = encrypt(plain_xml, aes_key=aes_key, appid=appid)
    params["encrypt_type"] = "aes"
    params["msg_signature"] = signature(token, ts, nc, enc)
    body = f"<xml><ToUserName>{_cdata(original_id)}</ToUserName><Encrypt>{_cdata(enc)}</Encrypt></xml>"
    return params, body.encode()


def with_query(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


__all__ = ["decrypt_reply", "encrypt", "escape", "nonce", "render_xml", "sign_callback", "signature", "with_query"]
