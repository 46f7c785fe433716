"""WeChat's errcodes become typed errors, and `classify` turns each into what the app does next."""

import datetime as dt

import pytest

from wechat_crm.wechat import errors
from wechat_crm.wechat.errors import (
    Outcome,
    WeChatDuplicate,
    WeChatInvalidToken,
    WeChatLocalRateLimited,
    WeChatMassQuota,
    WeChatNotFollowing,
    WeChatOutcomeUnknown,
    WeChatOutsideWindow,
    WeChatPermanent,
    WeChatRateLimited,
    WeChatTransient,
    WeChatUnauthorized,
    backoff,
    classify,
    error_from_response,
)


@pytest.mark.parametrize(
    ("errcode", "exc_type", "outcome"),
    [
        (43004, WeChatNotFollowing, Outcome.NOT_FOLLOWING),
        (45009, WeChatRateLimited, Outcome.RETRY_LATER),
        (45011, WeChatRateLimited, Outcome.RETRY_LATER),
        (45015, WeChatOutsideWindow, Outcome.OUTSIDE_WINDOW),
        (45047, WeChatOutsideWindow, Outcome.OUTSIDE_WINDOW),
        (45065, WeChatDuplicate, Outcome.SENT_ALREADY),
        (-1, WeChatTransient, Outcome.RETRY_LATER),
        (40001, WeChatInvalidToken, Outcome.RETRY_LATER),
        (42001, WeChatInvalidToken, Outcome.RETRY_LATER),
        (40014, WeChatInvalidToken, Outcome.RETRY_LATER),
        (40003, WeChatPermanent, Outcome.FAILED),
        (48001, WeChatUnauthorized, Outcome.FAILED),  # a WeChatPermanent that names the missing permission
        (45028, WeChatMassQuota, Outcome.FAILED),
    ],
)
def test_errcode_maps_to_typed_error_and_outcome(errcode, exc_type, outcome):
    exc = error_from_response(errcode, "msg")
    assert type(exc) is exc_type
    assert exc.errcode == errcode
    result = classify(exc)
    assert result.outcome is outcome
    assert result.errcode == errcode
    assert result.reason == f"wechat:{errcode}"


def test_minute_quota_suggests_retrying_after_a_minute():
    result = classify(error_from_response(45011, "api minute-quota reach limit"))
    assert result.retry_after == 60
    assert not result.final


def test_daily_quota_suggests_retrying_after_midnight_in_beijing():
    exc = error_from_response(45009, "reach max api daily quota limit")
    assert 60 < exc.retry_after <= 24 * 3600 + 60
    # 23:00 in Beijing is 15:00 UTC: the quota resets in one hour (plus a minute of slack).
    now = dt.datetime(2026, 1, 1, 15, 0, tzinfo=dt.UTC)
    assert errors.seconds_until_quota_reset(now) == 3600 + 60


def test_local_rate_limit_is_retry_later_with_its_delay():
    result = classify(WeChatLocalRateLimited(None, "group template", retry_after=2.5))
    assert result.outcome is Outcome.RETRY_LATER
    assert result.retry_after == 2.5


def test_network_failures_split_into_retry_later_and_unknown():
    transient = classify(WeChatTransient(None, "connect failed"))
    assert transient.outcome is Outcome.RETRY_LATER
    assert transient.retry_after >= 1
    unknown = classify(WeChatOutcomeUnknown(None, "ReadTimeoutError after sending"))
    assert unknown.outcome is Outcome.UNKNOWN
    assert unknown.final


def test_success_and_foreign_exceptions():
    assert classify(None).outcome is Outcome.SENT
    assert classify(ValueError("bug")).outcome is Outcome.FAILED


def test_operator_messages_are_translatable_text():
    from django.utils import translation

    with translation.override("en"):
        assert WeChatOutsideWindow(45015, "x").message == "Outside the customer-service window or quota."


def test_backoff_is_full_jitter_exponential_and_capped():
    for attempt in range(8):
        delays = [backoff(attempt, base=0.5, cap=4.0) for _ in range(200)]
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert all(0 <= d <= ceiling for d in delays)
        # Jitter: the delays spread over the interval instead of all being the same.
        assert max(delays) - min(delays) > ceiling / 4
    assert max(backoff(30, base=0.5, cap=4.0) for _ in range(100)) <= 4.0


def test_transient_retry_delay_grows_with_attempts():
    first = [classify(WeChatTransient(None, "x"), attempt=0).retry_after for _ in range(200)]
    later = [classify(WeChatTransient(None, "x"), attempt=6).retry_after for _ in range(200)]
    assert max(first) <= 8
    assert max(later) > 8
