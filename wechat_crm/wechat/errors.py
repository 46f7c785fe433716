"""WeChat's errors, typed by meaning, and the one place that turns an error into what the app does next.

Every failure of a call to WeChat surfaces as a subclass of `WeChatError`. The app layer never looks at
errcodes: it calls `classify(exc)` and acts on the `Outcome` (mark not following, retry later, record
"outside the window", count as already sent, mark unknown, fail).
"""

from __future__ import annotations

import datetime as dt
import enum
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy as _

# --- errcodes -----------------------------------------------------------------------------------
SYSTEM_BUSY = -1
INVALID_CREDENTIAL = 40001
INVALID_ACCESS_TOKEN = 40014
EXPIRED_ACCESS_TOKEN = 42001
NOT_FOLLOWING = 43004
DAILY_QUOTA = 45009
MINUTE_QUOTA = 45011
RESPONSE_OUT_OF_TIME_LIMIT = 45015
RESPONSE_COUNT_LIMIT = 45047
DUPLICATE_CLIENTMSGID = 45065
MASS_QUOTA = 45028
INVALID_MEDIA_ID = 40007
API_UNAUTHORIZED = 48001
INVALID_TEMPLATE_ID = 40037
NOTICE_REFUSED = 43101  # subscription notices: the person has not accepted this template (or used up their one)
ARGUMENT_INVALID = 47003  # e.g. a subscription notice's value that breaks its keyword's rule
# wxaapi/newtmpl (subscription-notice templates): the argument WeChat refused, named as our services name it.
NOTICE_LIBRARY_ARGUMENTS = {200014: "tid", 200020: "kid_list", 200021: "scene_desc"}
INVALID_CODE = 40029  # web authorisation: an unknown or expired code
CODE_USED = 40163  # web authorisation: a code exchanged already

INVALID_TOKEN_CODES = frozenset({INVALID_CREDENTIAL, INVALID_ACCESS_TOKEN, EXPIRED_ACCESS_TOKEN})

# WeChat resets daily quotas at midnight Beijing time.
_WECHAT_TZ = ZoneInfo("Asia/Shanghai")


class WeChatError(Exception):
    """A call to WeChat failed. `errcode`/`errmsg` are WeChat's (None for network errors)."""

    default_message = _("WeChat returned an error.")

    def __init__(self, errcode: int | None = None, errmsg: str = "", *, retry_after: float | None = None):
        self.errcode = errcode
        self.errmsg = errmsg or ""
        self.retry_after = retry_after
        super().__init__(errcode, self.errmsg)

    @property
    def message(self) -> str:
        """Shown to operators (translated)."""
        return str(self.default_message)

    def __str__(self) -> str:
        return f"{self.__class__.__name__}(errcode={self.errcode}, errmsg={self.errmsg!r})"


class WeChatInvalidToken(WeChatError):
    """40001 / 40014 / 42001: the access token was refused (still refused after one refresh)."""

    default_message = _("WeChat refused the access token.")


class WeChatNotFollowing(WeChatError):
    """43004: the subscriber no longer follows the account."""

    default_message = _("The subscriber does not follow the account.")


class WeChatRateLimited(WeChatError):
    """45009 (daily quota) / 45011 (minute quota) or our own limiter: back off and retry later."""

    default_message = _("WeChat's call quota is used up; retrying later.")


class WeChatLocalRateLimited(WeChatRateLimited):
    """Our outbound rate limiter did not grant a slot in time; nothing was sent."""

    default_message = _("Outbound rate limit reached; retrying later.")


class WeChatOutsideWindow(WeChatError):
    """45015 / 45047: outside the 48-hour customer-service window, or its reply quota is used up."""

    default_message = _("Outside the customer-service window or quota.")


class WeChatDuplicate(WeChatError):
    """45065: a mass send with this clientmsgid exists already; it counts as sent."""

    default_message = _("Already sent (duplicate clientmsgid).")


class WeChatTransient(WeChatError):
    """Network error before the request reached WeChat, 5xx, or -1 "system busy": safe to retry later."""

    default_message = _("WeChat is temporarily unavailable; retrying later.")


class WeChatOutcomeUnknown(WeChatError):
    """The request may have reached WeChat (e.g. a read timeout after sending): never resend it blindly."""

    default_message = _("WeChat did not answer; whether the message was sent is unknown.")


class WeChatPermanent(WeChatError):
    """Any other errcode: retrying will not help."""

    default_message = _("WeChat rejected the request.")


class WeChatMassQuota(WeChatPermanent):
    """45028: the account has no mass-send quota left (its daily or monthly mass sends are used up)."""

    default_message = _("WeChat refused the mass send: the account's mass-send quota is used up (45028).")


class WeChatMediaGone(WeChatPermanent):
    """40007: WeChat has no media (material, draft) with this media_id (deleted, or consumed by a send)."""

    default_message = _("WeChat no longer has this media (40007).")


class WeChatUnauthorized(WeChatPermanent):
    """48001: the account lacks the permission for this API (e.g. publishing on an unverified account).

    `api` names the call (set by the client method that made it), so the message names the missing permission."""

    api = ""

    @property
    def message(self) -> str:
        return str(
            _("The account lacks WeChat's permission for %(api)s (48001, api unauthorized).")
            % {"api": self.api or self.errmsg}
        )


class WeChatNoticeRefused(WeChatError):
    """43101: the person has not accepted this subscription notice (or has used up their one-time acceptance)."""

    default_message = _("The person has not accepted this subscription notice (43101).")


class WeChatArgumentInvalid(WeChatPermanent):
    """47003: an argument WeChat refuses, e.g. a subscription notice's value that breaks its keyword's rule; and the
    notice library's refusals of a title id, keyword list or scene (200014, 200020, 200021): `field` names it."""

    default_message = _("WeChat refused an argument of the request (47003).")

    @property
    def field(self) -> str:
        return NOTICE_LIBRARY_ARGUMENTS.get(self.errcode or 0, "")

    @property
    def message(self) -> str:
        if self.field:
            return str(_("WeChat refused %(field)s (%(code)s).") % {"field": self.field, "code": self.errcode})
        return str(self.default_message)


class WeChatTemplateInvalid(WeChatPermanent):
    """40037: WeChat has no template with this id (deleted, or never added to the account)."""

    default_message = _("WeChat has no template with this id (40037).")


class WeChatInvalidCode(WeChatPermanent):
    """40029 / 40163: a web authorisation code that is unknown, expired or used already."""

    default_message = _("WeChat did not accept the authorisation code (unknown, expired or used already).")


def seconds_until_quota_reset(now: dt.datetime | None = None) -> float:
    """Seconds until WeChat's daily quotas reset (midnight Asia/Shanghai), plus a minute of slack."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(_WECHAT_TZ)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds() + 60


def error_from_response(errcode: int, errmsg: str = "") -> WeChatError:
    """The typed exception for a non-zero errcode in a WeChat JSON response."""
    if errcode in INVALID_TOKEN_CODES:
        return WeChatInvalidToken(errcode, errmsg)
    if errcode == NOT_FOLLOWING:
        return WeChatNotFollowing(errcode, errmsg)
    if errcode == MINUTE_QUOTA:
        return WeChatRateLimited(errcode, errmsg, retry_after=60.0)
    if errcode == DAILY_QUOTA:
        return WeChatRateLimited(errcode, errmsg, retry_after=seconds_until_quota_reset())
    if errcode in (RESPONSE_OUT_OF_TIME_LIMIT, RESPONSE_COUNT_LIMIT):
        return WeChatOutsideWindow(errcode, errmsg)
    if errcode == DUPLICATE_CLIENTMSGID:
        return WeChatDuplicate(errcode, errmsg)
    if errcode == MASS_QUOTA:
        return WeChatMassQuota(errcode, errmsg)
    if errcode == INVALID_MEDIA_ID:
        return WeChatMediaGone(errcode, errmsg)
    if errcode == API_UNAUTHORIZED:
        return WeChatUnauthorized(errcode, errmsg)
    if errcode == NOTICE_REFUSED:
        return WeChatNoticeRefused(errcode, errmsg)
    if errcode == ARGUMENT_INVALID or errcode in NOTICE_LIBRARY_ARGUMENTS:
        return WeChatArgumentInvalid(errcode, errmsg)
    if errcode == INVALID_TEMPLATE_ID:
        return WeChatTemplateInvalid(errcode, errmsg)
    if errcode in (INVALID_CODE, CODE_USED):
        return WeChatInvalidCode(errcode, errmsg)
    if errcode == SYSTEM_BUSY:
        return WeChatTransient(errcode, errmsg)
    return WeChatPermanent(errcode, errmsg)


# --- backoff ------------------------------------------------------------------------------------
def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter: a random delay in [0, min(cap, base * 2**attempt)].

    `attempt` counts from 0 (the delay before the first retry).
    """
    return random.uniform(0, min(cap, base * (2 ** max(0, attempt))))


# --- classification: the one place errors become decisions ---------------------------------------
class Outcome(enum.StrEnum):
    SENT = "sent"
    SENT_ALREADY = "sent_already"
    NOT_FOLLOWING = "not_following"
    RETRY_LATER = "retry_later"
    OUTSIDE_WINDOW = "outside_window"
    NOT_CONSENTED = "not_consented"  # a subscription notice the person has not accepted (43101)
    UNKNOWN = "unknown"
    FAILED = "failed"


@dataclass(frozen=True)
class Classification:
    outcome: Outcome
    retry_after: float | None = None  # seconds; set for RETRY_LATER
    errcode: int | None = None
    reason: str = ""  # short machine-readable reason for delivery rows ("wechat:45011", "network", ...)

    @property
    def final(self) -> bool:
        """True when the app should not try again (everything but RETRY_LATER)."""
        return self.outcome is not Outcome.RETRY_LATER


def classify(exc: BaseException | None, *, attempt: int = 0) -> Classification:
    """What the app does about `exc` (None means success). `attempt` counts the app's earlier retries
    and scales the suggested delay for transient errors.
    """
    if exc is None:
        return Classification(Outcome.SENT)
    if not isinstance(exc, WeChatError):
        return Classification(Outcome.FAILED, reason=f"error:{exc.__class__.__name__}")
    code = exc.errcode
    reason = f"wechat:{code}" if code is not None else exc.__class__.__name__
    if isinstance(exc, WeChatDuplicate):
        return Classification(Outcome.SENT_ALREADY, errcode=code, reason=reason)
    if isinstance(exc, WeChatNotFollowing):
        return Classification(Outcome.NOT_FOLLOWING, errcode=code, reason=reason)
    if isinstance(exc, WeChatOutsideWindow):
        return Classification(Outcome.OUTSIDE_WINDOW, errcode=code, reason=reason)
    if isinstance(exc, WeChatNoticeRefused):
        return Classification(Outcome.NOT_CONSENTED, errcode=code, reason=reason)
    if isinstance(exc, WeChatOutcomeUnknown):
        return Classification(Outcome.UNKNOWN, errcode=code, reason=reason)
    if isinstance(exc, WeChatRateLimited):
        delay = exc.retry_after if exc.retry_after is not None else 60.0
        return Classification(Outcome.RETRY_LATER, retry_after=delay, errcode=code, reason=reason)
    if isinstance(exc, WeChatInvalidToken):
        # Still refused after one forced refresh (another system keeps refreshing?): nothing was sent, try later.
        return Classification(Outcome.RETRY_LATER, retry_after=30.0, errcode=code, reason=reason)
    if isinstance(exc, WeChatTransient):
        delay = exc.retry_after if exc.retry_after is not None else max(1.0, backoff(attempt + 1, base=2.0, cap=300.0))
        return Classification(Outcome.RETRY_LATER, retry_after=delay, errcode=code, reason=reason)
    return Classification(Outcome.FAILED, errcode=code, reason=reason)
