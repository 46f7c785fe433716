"""WeChat's callback signatures and message encryption (WXBizMsgCrypt), as pure functions.

Signatures: SHA-1 of the sorted, concatenated strings (token, timestamp, nonce[, encrypt]), compared in constant time.
Encryption ("safe mode"): AES-256-CBC with key = base64(EncodingAESKey + "="), IV = the key's first 16 bytes,
PKCS#7 padding to 32-byte blocks, over `random(16) || len(xml) as 4 bytes big-endian || xml || appid`.

We use `cryptography` directly rather than wechatpy's wrapper: the cipher is built once per key (see `cipher_for`),
the padding is validated, and a wrong key or appid is one typed error, `DecryptionError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from functools import lru_cache
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_SIZE = 32  # WeChat pads to 32 bytes, not AES's 16.
_LENGTH = struct.Struct(">I")


class DecryptionError(Exception):
    """The ciphertext is not base64, not padded as WeChat pads, or not for this key and appid."""


class InvalidKeyError(ValueError):
    """An EncodingAESKey that is not 43 characters of base64 for a 32-byte key."""


def signature(token: str, *parts: str) -> str:
    """WeChat's signature over the token and the given strings (timestamp, nonce and, in safe mode, Encrypt)."""
    joined = "".join(sorted((token, *parts)))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()  # noqa: S324 - WeChat's protocol is SHA-1


def signature_matches(given: str, token: str, *parts: str) -> bool:
    """Constant-time check of a signature that WeChat sent."""
    expected = signature(token, *parts)
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise InvalidKeyError("EncodingAESKey must be 43 characters long")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise InvalidKeyError("EncodingAESKey is not base64") from exc
    if len(key) != 32:
        raise InvalidKeyError("EncodingAESKey does not decode to 32 bytes")
    return key


class MessageCipher:
    """Encrypts and decrypts callback messages for one EncodingAESKey. Build it with `cipher_for` (cached)."""

    def __init__(self, encoding_aes_key: str):
        key = aes_key(encoding_aes_key)
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def decrypt(self, encrypted: str | bytes, app_id: str) -> bytes:
        """The plaintext XML (bytes) of a base64 `Encrypt` value. Raises DecryptionError."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptionError("ciphertext is not base64") from exc
        if len(data) < BLOCK_SIZE or len(data) % 16:
            raise DecryptionError("ciphertext has a wrong length")
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK_SIZE or plain[-pad:] != bytes((pad,)) * pad:
            raise DecryptionError("bad padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise DecryptionError("message too short")
        (length,) = _LENGTH.unpack_from(content)
        if length > len(content) - 4:
            raise DecryptionError("bad message length")
        xml, from_app_id = content[4 : 4 + length], content[4 + length :]
        if not hmac.compare_digest(from_app_id, app_id.encode("utf-8")):
            raise DecryptionError("message is for another appid")
        return xml

    def encrypt(self, xml: str | bytes, app_id: str, *, random_prefix: bytes | None = None) -> str:
        """The base64 `Encrypt` value for a message, as WeChat builds it."""
        body = xml.encode("utf-8") if isinstance(xml, str) else xml
        prefix = random_prefix if random_prefix is not None else _random_prefix()
        text = prefix + _LENGTH.pack(len(body)) + body + app_id.encode("utf-8")
        pad = BLOCK_SIZE - len(text) % BLOCK_SIZE
        text += bytes((pad,)) * pad
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(text) + encryptor.finalize()).decode("ascii")


def _random_prefix() -> bytes:
    # WeChat uses 16 random printable characters; any 16 bytes decrypt the same way.
    return base64.b32encode(os.urandom(10)).decode("ascii")[:16].encode("ascii")


@lru_cache(maxsize=8)
def cipher_for(encoding_aes_key: str) -> MessageCipher:
    """The cipher for a key, built once per process (the key is read from settings at request time)."""
    return MessageCipher(encoding_aes_key)


class Decrypted(NamedTuple):
    plain: bytes
    key: str  # the EncodingAESKey that worked (the reply is encrypted with it)


def decrypt_with_any(encrypted: str, app_id: str, keys: list[str]) -> Decrypted:
    """The plaintext and the key that worked: the current key first, then the previous one during a rotation."""
    error: Exception = DecryptionError("no EncodingAESKey configured")
    for key in keys:
        if not key:
            continue
        try:
            return Decrypted(cipher_for(key).decrypt(encrypted, app_id), key)
        except (DecryptionError, InvalidKeyError) as exc:
            error = exc
    raise DecryptionError(str(error)) from error
