"""`/healthz`: is every part the product needs reachable? 200 when all are, 503 otherwise, JSON either way.

The public (a load balancer) gets only `{"ok": true|false}`: which database, cache or broker we run, and which of them
is down, is for whoever holds the metrics token (`Authorization: Bearer $METRICS_TOKEN`), who gets every check.

The WeChat access token is reported (cached or not, seconds left) without fetching one: a fresh deployment has
no token until its first call, which is not a failure; an unreadable token cache is.
"""

import time
from collections.abc import Callable

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"vendor": connection.vendor}


def _check_cache() -> dict:
    cache.set("healthz", "ok", timeout=10)
    if cache.get("healthz") != "ok":
        raise RuntimeError("cache did not return what was written")
    return {"backend": cache.__class__.__name__}


def _check_broker() -> dict:
    from wechat_crm.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls if isinstance(conn.transport_cls, str) else "custom"}


def _check_wechat_token() -> dict:
    from django.conf import settings

    from wechat_crm.wechat.tokens import TokenStore

    status = TokenStore(settings.WECHAT_APP_ID, settings.WECHAT_APP_SECRET).status()
    return {"cached": bool(status["cached"]), "expires_in": int(status["expires_in"])}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": _check_database,
    "cache": _check_cache,
    "broker": _check_broker,
    "wechat_token": _check_wechat_token,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report: dict[str, dict] = {}
    healthy = True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            report[name] = {"ok": True, **detail}
        except Exception as exc:  # a health check reports every failure, whatever its type
            healthy = False
            report[name] = {"ok": False, "error": exc.__class__.__name__}
        report[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    from django.conf import settings

    from wechat_crm.metrics import bearer_matches

    status = 200 if healthy else 503
    if not bearer_matches(request, getattr(settings, "METRICS_TOKEN", "")):
        return JsonResponse({"ok": healthy}, status=status)
    return JsonResponse({"ok": healthy, "checks": report}, status=status)
