"""Prometheus metrics at `/metrics`.

- `wechat_crm_callback_seconds` (histogram, label `status`): the WeChat callback's latency, observed in the view.
  Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR (an empty directory, wiped at each start):
  every worker then writes its samples to a memory-mapped file and a scrape sums them. Observing costs about a
  microsecond, nothing measurable on the callback's path.
- `wechat_crm_deliveries` (gauge, labels `channel`, `status`): push deliveries by outcome, counted in the database
  at scrape time (one grouped index-only count, cached METRICS_DB_CACHE_SECONDS), so Celery workers need no
  metrics endpoint of their own and the figures agree whichever process is scraped.
- `wechat_crm_interactions_pending`: callback follow-ups not yet processed (the outbox's backlog).
- `wechat_crm_celery_queue_length` (gauge, label `queue`): messages waiting in each Celery queue in Redis.
- `wechat_crm_link_clicks_pending`: tracked-link clicks answered and waiting in the click buffer (Redis) for the
  drain that stores them (content.clicks); absent without the buffer (no Redis cache) or when Redis is down.

METRICS_TOKEN, when set, must be given as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import time
from collections.abc import Callable, Iterator
from functools import wraps

# prometheus_client turns to multiprocess mode when the variable merely exists, and with an empty one writes its
# files into the working directory. Empty means unset here, as for every variable in the README.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

QUEUES = ("inbound", "outbound", "reports", "default")
CALLBACK_SECONDS = Histogram(
    "wechat_crm_callback_seconds",
    "Latency of the WeChat callback, by HTTP status.",
    ["status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def observe_callback(view: Callable) -> Callable:
    """Decorator for the callback view: records its latency by status."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        CALLBACK_SECONDS.labels(str(response.status_code)).observe(time.perf_counter() - started)
        return response

    return wrapper


class DatabaseCollector(Collector):
    """Figures read from PostgreSQL and Redis at scrape time (cached briefly: scrapes must stay cheap)."""

    def collect(self) -> Iterator[Metric]:
        from django.conf import settings
        from django.core.cache import cache

        ttl = getattr(settings, "METRICS_DB_CACHE_SECONDS", 15)
        figures = None
        with contextlib.suppress(Exception):  # the cache being down is reported by /healthz
            figures = cache.get("metrics:figures")
        if figures is None:
            figures = _figures()
            with contextlib.suppress(Exception):
                cache.set("metrics:figures", figures, timeout=ttl)
        deliveries = GaugeMetricFamily(
            "wechat_crm_deliveries", "Push deliveries by channel and status.", labels=["channel", "status"]
        )
        for (channel, status), n in figures["deliveries"]:
            deliveries.add_metric([channel, status], n)
        yield deliveries
        yield GaugeMetricFamily(
            "wechat_crm_interactions_pending", "Callback follow-ups not processed yet.", value=figures["pending"]
        )
        queues = GaugeMetricFamily("wechat_crm_celery_queue_length", "Messages waiting per Celery queue.",
                                   labels=["queue"])  # fmt: skip
        for name, n in figures["queues"]:
            queues.add_metric([name], n)
        yield queues
        if figures.get("clicks_pending") is not None:
            yield GaugeMetricFamily(
                "wechat_crm_link_clicks_pending",
                "Tracked-link clicks waiting in the click buffer to be stored.",
                value=figures["clicks_pending"],
            )


def _figures() -> dict:
    from django.db.models import Count

    from accounts.models import Interaction
    from content.models import Delivery

    rows = Delivery.objects.order_by().values_list("channel", "status").annotate(n=Count("id"))
    figures: dict = {"deliveries": [((c, s), n) for c, s, n in rows], "queues": []}
    figures["pending"] = Interaction.objects.filter(processed_at__isnull=True).count()
    try:
        from wechat_crm.wechat.ratelimit import redis_client

        client = redis_client()
        if client is not None:
            with client.pipeline(transaction=False) as pipe:
                for name in QUEUES:
                    pipe.llen(name)
                figures["queues"] = list(zip(QUEUES, pipe.execute(), strict=True))
    except Exception:  # noqa: S110 - Redis down: the gauge is absent, /healthz says why
        pass
    try:
        from content import clicks

        if clicks.buffered():
            figures["clicks_pending"] = clicks.pending()
    except Exception:  # noqa: S110 - Redis down: the gauge is absent, /healthz says why
        pass
    return figures


class _Default(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def render() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Default())
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def bearer_matches(request, token: str) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (compared in constant time); never for no token."""
    if not token:
        return False
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


def metrics_view(request):
    from django.conf import settings
    from django.http import HttpResponse
    from django.utils.translation import gettext

    token = getattr(settings, "METRICS_TOKEN", "")
    if token and not bearer_matches(request, token):
        return HttpResponse(gettext("unauthorized"), status=401, content_type="text/plain")
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
