"""Web authorisation (网页授权, scope snsapi_base): learning who opened one of our pages in WeChat's browser.

The round trip: a page of ours answers a WeChat browser with a redirect to WeChat's authorise page
(`wechat_crm.wechat.client.web_auth_url`) carrying a signed `state`; WeChat sends the browser back to our return
URL with a `code` and the `state`; the return view checks the state (`state_read`: authentic, of its purpose,
unexpired, and not seen before), then trades the code for the openid through the gateway (`person_from_code`).

A state is at most 128 letters and digits, as WeChat requires:
  <purpose><len><b62 value>...<signature>
  purpose    one letter ("L" a tracked link, "P" the preferences page)
  values     the purpose's integers (for a link: subscriber, push, content, link ids, 0 for none), then the issue
             time (seconds) and a random nonce; each is one base62 character giving its length, then its base62
  signature  HMAC-SHA256 over the rest (SECRET_KEY, then each of SECRET_KEY_FALLBACKS), 128 bits in base62
Signed, not encrypted: it holds ids, never an openid. Single use: the nonce is remembered in the cache for the
state's lifetime (without the cache the check is skipped and logged; WeChat's codes are single use anyway, so a
replayed return URL still fails at the code exchange).

The shop hand-off: `ref_make(subscriber_id=)` is a signed, expiring reference to a person (not the openid) added to
a tracked link's destination; the shop sends it back with its conversions and `ref_read` names the subscriber.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from wechat_crm.exceptions import ApplicationError

from .models import Subscriber

logger = logging.getLogger(__name__)

PURPOSE_LINK = "L"
PURPOSE_PREFERENCES = "P"
PURPOSES = (PURPOSE_LINK, PURPOSE_PREFERENCES)
STATE_MAX_CHARS = 128
SIGNATURE_CHARS = 22
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_INDEX = {c: i for i, c in enumerate(_B62)}
_SALT = b"accounts.webauth.state.v1"
REF_SALT = "accounts.webauth.ref.v1"
REF_PARAM = "wxref"


class WebAuthRefused(ApplicationError):
    """The return from WeChat's authorise page cannot be trusted (bad, expired or replayed state; a code WeChat
    refused): answered 400, and nobody is credited."""


class RefInvalid(ApplicationError):
    """A shop's `ref` that is not ours, or has expired."""


def _b62(n: int) -> str:
    if n < 0:
        raise ValueError("negative")
    out = []
    while True:
        n, r = divmod(n, 62)
        out.append(_B62[r])
        if not n:
            return "".join(reversed(out))


def _b62_read(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + _B62_INDEX[c]
    return n


def _mac(body: str, key: str) -> str:
    digest = hmac.new(hashlib.sha256(_SALT + key.encode()).digest(), body.encode(), hashlib.sha256).digest()
    return _b62(int.from_bytes(digest[:16], "big")).rjust(SIGNATURE_CHARS, "0")


def _keys() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def state_make(*, purpose: str, values: Sequence[int] = (), now: float | None = None) -> str:
    """A fresh signed state for one round trip through WeChat's authorise page."""
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    issued = int(now if now is not None else time.time())
    fields = [*values, issued, secrets.randbits(64)]
    body = purpose + "".join(_B62[len(v)] + v for v in map(_b62, fields))
    state = body + _mac(body, settings.SECRET_KEY)
    if len(state) > STATE_MAX_CHARS:  # pragma: no cover - ids would need more than 50 digits
        raise ValueError("state too long")
    return state


def state_refused() -> WebAuthRefused:
    return WebAuthRefused(_("This sign-in link is not valid or was used already. Open the link again from WeChat."))


def state_read(state: str, *, purpose: str, now: float | None = None) -> list[int]:
    """The values of an authentic, unexpired state of `purpose` seen for the first time; WebAuthRefused otherwise.
    Reading it uses it up."""
    if not state or len(state) > STATE_MAX_CHARS or not state.isascii() or not state.isalnum():
        raise state_refused()
    body, signature = state[:-SIGNATURE_CHARS], state[-SIGNATURE_CHARS:]
    if not body.startswith(purpose) or not any(hmac.compare_digest(_mac(body, k), signature) for k in _keys()):
        raise state_refused()
    fields, at = [], len(purpose)
    try:
        while at < len(body):
            size = _B62_INDEX[body[at]]
            if size == 0 or at + 1 + size > len(body):
                raise ValueError("bad field")
            fields.append(_b62_read(body[at + 1 : at + 1 + size]))
            at += 1 + size
    except (KeyError, ValueError):
        raise state_refused() from None
    if len(fields) < 2:
        raise state_refused()
    *values, issued, nonce = fields
    now = now if now is not None else time.time()
    if not issued - 60 <= now <= issued + settings.WEB_AUTH_STATE_MAX_AGE:
        raise state_refused()
    if not _first_use(nonce):
        logger.info("web authorisation: a state came back a second time; refused")
        raise state_refused()
    return values


def _first_use(nonce: int) -> bool:
    from django.core.cache import cache

    try:
        return bool(cache.add(f"webauth:state:{nonce}", 1, timeout=settings.WEB_AUTH_STATE_MAX_AGE + 120))
    except Exception:  # the cache is down: WeChat's single-use code still stops a replayed return URL
        logger.warning("web authorisation: the cache is unavailable; the state's single use is not checked")
        return True


# --- who came back ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """The person web authorisation identified: their subscriber row (None for a snapshot page's virtual user, who
    is nobody) and whether they follow the account."""

    subscriber_id: int | None
    following: bool


def person_from_code(*, code: str, create: bool = True) -> Person:
    """Trade the authorise page's code for the person (through the gateway). A person we do not know yet (a forward
    reached someone who does not follow) gets a subscriber row that does not follow, so that a later follow finds
    what brought it; with `create=False` they are nobody (Person(None, False)). WebAuthRefused when WeChat refuses
    the code (unknown, expired, used already)."""
    from wechat_crm.wechat.client import get_client
    from wechat_crm.wechat.errors import WeChatError, WeChatInvalidCode

    if not code or len(code) > 512:
        raise state_refused()
    try:
        identity = get_client().web_auth_identity(code=code)
    except WeChatInvalidCode as exc:
        logger.info("web authorisation: WeChat refused the code (%s)", exc.errcode)
        raise state_refused() from None
    except WeChatError as exc:
        logger.warning("web authorisation: the code exchange failed: %s", exc)
        raise WebAuthRefused(_("WeChat could not confirm who you are just now. Please open the link again.")) from None
    if identity.snapshot:
        return Person(subscriber_id=None, following=False)
    if not create:
        row = Subscriber.objects.filter(openid=identity.openid).values_list("pk", "is_following").first()
        return Person(subscriber_id=row[0], following=bool(row[1])) if row else Person(None, False)
    return person_for_openid(openid=identity.openid, unionid=identity.unionid)


def person_for_openid(*, openid: str, unionid: str = "") -> Person:
    """The subscriber with this openid, created (not following) when we have never heard of them."""
    row = Subscriber.objects.filter(openid=openid).values_list("pk", "is_following").first()
    if row is None:
        try:
            with transaction.atomic():
                sub = Subscriber.objects.create(openid=openid, unionid=unionid or None, is_following=False)
            row = (sub.pk, False)
        except IntegrityError:  # created meanwhile by the callback or another return
            row = Subscriber.objects.filter(openid=openid).values_list("pk", "is_following").get()
    return Person(subscriber_id=row[0], following=bool(row[1]))


# --- the shop hand-off -----------------------------------------------------------------------------------------


class _ShortSigner(signing.TimestampSigner):
    def signature(self, value, key=None):
        return super().signature(value, key)[:SIGNATURE_CHARS]


def _ref_signer() -> _ShortSigner:
    return _ShortSigner(salt=REF_SALT, sep=".", algorithm="sha256")


def ref_make(*, subscriber_id: int) -> str:
    """A signed reference to the person for a shop (`<id>.<time>.<signature>`, about 35 characters)."""
    return _ref_signer().sign(_b62(subscriber_id))


def ref_read(ref: str) -> int:
    """The subscriber id of a reference made by ref_make within SHOP_REF_MAX_AGE_DAYS; RefInvalid otherwise."""
    signer = _ref_signer()
    try:
        raw = signer.unsign(ref, max_age=settings.SHOP_REF_MAX_AGE_DAYS * 86400)
        return _b62_read(raw)
    except signing.SignatureExpired:
        raise RefInvalid(_("This ref has expired: the person followed the link too long ago.")) from None
    except (signing.BadSignature, KeyError, ValueError):
        raise RefInvalid(_("This ref is not one of ours (it was changed or cut).")) from None
