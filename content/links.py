"""Tracked-link tokens and the rewriting of links in outgoing text.

A token is `<payload>.<timestamp>.<signature>` made by django.core.signing's TimestampSigner with its own salt:
  payload    "<subscriber>-<push>-<content>-<link>", each a base62 integer id, empty for none
             (subscriber: accounts.Subscriber.id; push: content.Push.id;
              content: content.Article.id; link: content.TrackedLink.id, the row holding the target URL)
  timestamp  base62 seconds, checked against TRACKED_LINK_MAX_AGE_DAYS
  signature  HMAC-SHA256 of the rest with SECRET_KEY and the salt, cut to 128 bits (22 characters)
Signed is not encrypted: anyone can read the ids, so the payload holds ids only, never an openid, a name or a URL.
A typical token is about 40 characters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .errors import LinkTokenExpired, LinkTokenInvalid

SALT = "content.links.v1"
SEP = "."
SIGNATURE_CHARS = 22
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_INDEX = {c: i for i, c in enumerate(_B62)}


class _ShortSigner(signing.TimestampSigner):
    """TimestampSigner with the signature cut to 128 bits: shorter URLs, still far beyond guessing."""

    def signature(self, value, key=None):
        return super().signature(value, key)[:SIGNATURE_CHARS]


def _signer() -> _ShortSigner:
    return _ShortSigner(salt=SALT, sep=SEP, algorithm="sha256")


def b62encode(n: int) -> str:
    if n < 0:
        raise ValueError("negative id")
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out))


def b62decode(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + _B62_INDEX[c]
    return n


@dataclass(frozen=True, slots=True)
class LinkPayload:
    subscriber_id: int
    push_id: int | None
    content_id: int | None
    link_id: int


def _opt(n: int | None) -> str:
    return "" if n is None else b62encode(n)


def token_make(payload: LinkPayload) -> str:
    raw = "-".join(
        [b62encode(payload.subscriber_id), _opt(payload.push_id), _opt(payload.content_id), b62encode(payload.link_id)]
    )
    return _signer().sign(raw)


@lru_cache(maxsize=8)
def _keyed_hmac(secret: str) -> hmac.HMAC:
    """The HMAC of _ShortSigner's signatures for one secret key, keyed once (django.core.signing derives the key,
    SHA-256 of salt + "signer" + secret, at every call)."""
    key = hashlib.sha256(f"{SALT}signer{secret}".encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def token_maker(*, push_id: int | None, content_id: int | None, link_id: int) -> Callable[[int], str]:
    """`token_make` for many subscribers of one link: subscriber id -> the same token `token_make` signs. Django's
    signer derives its HMAC key from the salt and SECRET_KEY on every call; here it is derived once, and each token
    costs one HMAC of its own bytes (a push's page signs hundreds)."""
    mac = _keyed_hmac(settings.SECRET_KEY)  # what _ShortSigner signs new tokens with
    tail = f"-{_opt(push_id)}-{_opt(content_id)}-{b62encode(link_id)}{SEP}"

    def make(subscriber_id: int) -> str:
        value = f"{b62encode(subscriber_id)}{tail}{signing.b62_encode(int(time.time()))}"
        one = mac.copy()
        one.update(value.encode())
        return f"{value}{SEP}{base64.urlsafe_b64encode(one.digest()).rstrip(b'=').decode()[:SIGNATURE_CHARS]}"

    return make


def _payload_parse(raw: str) -> LinkPayload:
    parts = raw.split("-")
    if len(parts) != 4 or not parts[0] or not parts[3]:
        raise ValueError("bad payload")
    s, p, c, link = (b62decode(x) if x else None for x in parts)
    return LinkPayload(subscriber_id=s, push_id=p, content_id=c, link_id=link)  # type: ignore[arg-type]


def _signature_matches(value: str, given: str) -> bool:
    """_ShortSigner's check of `given` for `value`, with SECRET_KEY or one of SECRET_KEY_FALLBACKS: the same
    signatures, a third of the CPU."""
    given_bytes = given.encode("utf-8", "replace")
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        mac = _keyed_hmac(secret).copy()
        mac.update(value.encode())
        expected = base64.urlsafe_b64encode(mac.digest())[:SIGNATURE_CHARS]
        if hmac.compare_digest(expected, given_bytes):
            return True
    return False


def token_read(token: str, *, max_age_seconds: float, url_of: Callable[[int], str | None]) -> LinkPayload:
    """The payload of an authentic, unexpired token; LinkTokenInvalid or LinkTokenExpired (with the URL) otherwise.
    What _ShortSigner().unsign(token, max_age=...) checks, in a third of its CPU (the redirect's hot path)."""
    value, sep, given = token.rpartition(SEP)
    if not sep or not _signature_matches(value, given):
        raise LinkTokenInvalid(_("This link is not valid."))
    raw, sep, stamp = value.rpartition(SEP)
    try:
        if not sep:
            raise ValueError("no timestamp")
        payload = _payload_parse(raw)
        expired = time.time() - signing.b62_decode(stamp) > max_age_seconds
    except (ValueError, KeyError, IndexError):
        raise LinkTokenInvalid(_("This link is not valid.")) from None
    if expired:
        raise LinkTokenExpired(_("This link has expired."), url=url_of(payload.link_id) or "")
    return payload


# --- TrackedLink rows, cached in both directions (rows never change) -----------------------------------------------

_CACHE_SIZE = 10_000
_id_by_url: OrderedDict[str, int] = OrderedDict()
_url_by_id: OrderedDict[int, str] = OrderedDict()
_lock = threading.Lock()


def _remember(url: str, link_id: int) -> None:
    with _lock:
        _id_by_url[url] = link_id
        _url_by_id[link_id] = url
        while len(_id_by_url) > _CACHE_SIZE:
            _id_by_url.popitem(last=False)
        while len(_url_by_id) > _CACHE_SIZE:
            _url_by_id.popitem(last=False)


def cache_clear() -> None:
    with _lock:
        _id_by_url.clear()
        _url_by_id.clear()


def link_id_for(url: str) -> int:
    """The TrackedLink id of `url`, created on first use (one query per new URL and process)."""
    with _lock:
        link_id = _id_by_url.get(url)
    if link_id is not None:
        return link_id
    from .models import TrackedLink

    url_hash = hashlib.sha256(url.encode()).hexdigest()
    try:
        with transaction.atomic():
            link, _created = TrackedLink.objects.get_or_create(url_hash=url_hash, defaults={"url": url})
    except IntegrityError:  # a concurrent first use of the same URL
        link = TrackedLink.objects.get(url_hash=url_hash)
    _remember(url, link.pk)
    return link.pk


def url_for(link_id: int) -> str | None:
    with _lock:
        url = _url_by_id.get(link_id)
    if url is not None:
        return url
    from .models import TrackedLink

    url = TrackedLink.objects.filter(pk=link_id).values_list("url", flat=True).first()
    if url is not None:
        _remember(url, link_id)
    return url


# --- Rewriting ----------------------------------------------------------------------------------------------------

_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]"
_BARE_URL_RE = re.compile(rf"https?://{_URL_CHARS}+", re.IGNORECASE)
# An <a ...> start tag, any other tag (left alone: <img src> is not a link to track), or a bare URL in text.
_SCAN_RE = re.compile(rf"(?P<a><a\b[^>]*>)|(?P<tag><[A-Za-z/!][^>]*>)|(?P<url>https?://{_URL_CHARS}+)", re.IGNORECASE)
_HREF_RE = re.compile(r"""(?P<pre>\bhref\s*=\s*)(?:(?P<q>["'])(?P<v>.*?)(?P=q)|(?P<u>[^\s>"']+))""", re.IGNORECASE)
_TRAILING = ".,;:!?)]'"
_HAS_TAG_RE = re.compile(r"<[A-Za-z/!]")


def _split_trailing(url: str) -> tuple[str, str]:
    """Leave sentence punctuation after a bare URL out of it ("see https://x.com/a." -> "https://x.com/a" + ".")."""
    end = len(url)
    while end > 0 and url[end - 1] in _TRAILING:
        if url[end - 1] == ")" and url[:end].count("(") >= url[:end].count(")"):
            break
        end -= 1
    return url[:end], url[end:]


def rewrite(text: str, track: Callable[[str], str], *, is_tracked: Callable[[str], bool]) -> str:
    """Replace every http(s) link of `text` (a bare URL, or the href of an <a> tag) with `track(url)`."""
    if not text:
        return text
    as_html = bool(_HAS_TAG_RE.search(text))

    def replace_href(m: re.Match) -> str:
        raw = m.group("v") if m.group("q") else m.group("u")
        url = html.unescape(raw).strip()
        if not url.lower().startswith(("http://", "https://")) or is_tracked(url):
            return m.group(0)
        q = m.group("q") or '"'
        return f"{m.group('pre')}{q}{html.escape(track(url), quote=True)}{q}"

    def replace(m: re.Match) -> str:
        if m.group("a"):
            return _HREF_RE.sub(replace_href, m.group("a"), count=1)
        if m.group("tag"):
            return m.group("tag")
        url, trailing = _split_trailing(m.group("url"))
        target = html.unescape(url) if as_html else url
        if is_tracked(target):
            return m.group("url")
        tracked = track(target)
        return (html.escape(tracked, quote=False) if as_html else tracked) + trailing

    return _SCAN_RE.sub(replace, text)
