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
