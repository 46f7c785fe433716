"""Login throttling (django-axes) that also lets request-less authentication through to the next backend.

AxesStandaloneBackend refuses any authenticate() call without a request (the test client's login(), scripts).
Those calls come from code on the server, never from a login form, so there is nothing to throttle: this
backend steps aside for them and checks the lockout for every call that carries a request (admin, API login).
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request) -> str:
    """The client's address for the login lockout (AXES_CLIENT_IP_CALLABLE), so that a lockout is per person and
    address. Behind TRUSTED_PROXY_COUNT reverse proxies that each append the address they saw to X-Forwarded-For
    (nginx: `$proxy_add_x_forwarded_for`), the client is that many entries from the right; what the client itself
    put further left is ignored, so it cannot pose as someone else. Without proxies (0): REMOTE_ADDR."""
    from django.conf import settings

    remote = request.META.get("REMOTE_ADDR", "")
    count = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if count <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if len(hops) < count:
        return remote  # not through all our proxies: the direct peer is all we know
    return hops[-count]
