"""API throttles (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]) that read their rates from the settings on each request.

DRF's own classes copy DEFAULT_THROTTLE_RATES once, when they are imported; these ask
settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] each time, so a changed setting (a test's) takes effect at once.
A scope without a rate is not throttled.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework import throttling


def _rate(scope: str | None) -> str | None:
    return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(scope)


class AnonRateThrottle(throttling.AnonRateThrottle):
    """Anonymous requests, per client address."""

    def get_rate(self) -> str | None:
        return _rate(self.scope)


class UserRateThrottle(throttling.UserRateThrottle):
    """Every user's requests, whatever the view."""

    def get_rate(self) -> str | None:
        return _rate(self.scope)


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """The requests of a user to the views of one `throttle_scope` (reports, exports)."""

    def get_rate(self) -> str | None:
        return _rate(self.scope)
