"""Production settings, /healthz's token report and /metrics: what an operator deploying the product relies on."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
from logging.config import dictConfig
from pathlib import Path

import pytest

from tests.fixtures.wechat_payloads import build_message

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.production", **env},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


# What a real deployment sets: every value production requires (the test generates its secrets).
def real_values() -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "crm.example.com",
        "PUBLIC_BASE_URL": "https://crm.example.com",
        "WECHAT_APP_ID": "wx1234567890abcdef",
        "WECHAT_APP_SECRET": secrets.token_hex(16),
        "WECHAT_TOKEN": secrets.token_hex(16),
        "WECHAT_ENCODING_AES_KEY": secrets.token_urlsafe(40)[:43].ljust(43, "a"),
        "METRICS_TOKEN": secrets.token_urlsafe(24),
    }


def test_check_deploy_reports_nothing_with_real_values_from_the_environment():
    result = _manage("check", "--deploy", **real_values())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "?:" not in result.stderr, result.stderr


@pytest.mark.parametrize("key", [None, "short", "insecure-dev-key-change-me-in-production-0123456789xxxxxxxxxx"])
def test_production_refuses_to_start_without_a_real_secret_key(key):
    env = {**real_values()}
    env.pop("DJANGO_SECRET_KEY")
    if key is not None:
        env["DJANGO_SECRET_KEY"] = key
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WECHAT_TOKEN", None),
        ("WECHAT_TOKEN", ""),
        ("WECHAT_TOKEN", "short"),
        ("WECHAT_TOKEN", "demo_token"),
        ("WECHAT_ENCODING_AES_KEY", None),
        ("WECHAT_ENCODING_AES_KEY", "too-short"),
        ("PUBLIC_BASE_URL", None),
        ("PUBLIC_BASE_URL", "http://crm.example.com"),
        ("METRICS_TOKEN", None),
        ("METRICS_TOKEN", ""),
    ],
)
def test_production_refuses_to_start_unsafe(variable, value):
    env = real_values()
    env.pop(variable)
    if value is not None:
        env[variable] = value
    result = _manage("check", "--deploy", **env)
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr, result.stderr[-600:]


def test_production_runs_in_plain_mode_only_when_it_is_chosen():
    env = real_values()
    env.pop("WECHAT_ENCODING_AES_KEY")
    result = _manage("check", "--deploy", WECHAT_ALLOW_PLAIN_MODE="true", **env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("entry", ["manage.py", "wsgi", "celery"])
def test_the_entry_points_never_fall_back_to_debug_settings(entry):
    """Without DJANGO_SETTINGS_MODULE, manage.py, the WSGI module and the Celery app load the production settings,
    which refuse to start without real secrets (never DEBUG, the development key or the demo token)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_", "METRICS_", "PUBLIC_"))}
    code = {
        "manage.py": None,
        "wsgi": "import wechat_crm.wsgi",
        "celery": "from wechat_crm.celery import app; app.loader.import_default_modules()",
    }[entry]
    args = [sys.executable, "manage.py", "check"] if code is None else [sys.executable, "-c", code]
    result = subprocess.run(args, cwd=ROOT, env=base, capture_output=True, text=True, timeout=180)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr, result.stderr[-600:]
    # With the real values, the same entry point starts on the production settings (DEBUG off).
    probe = "from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)"
    code = {
        "manage.py": None,
        "wsgi": "import wechat_crm.wsgi;" + probe,
        "celery": "from wechat_crm.celery import app; app.loader.import_default_modules();" + probe,
    }[entry]
    args = [sys.executable, "manage.py", "shell", "-c", probe] if code is None else [sys.executable, "-c", code]
    result = subprocess.run(args, cwd=ROOT, env={**base, **real_values()}, capture_output=True, text=True, timeout=180)
    assert result.stdout.strip().splitlines()[-1] == "wechat_crm.settings.production False", result.stderr[-600:]


def test_production_logs_are_json_lines_without_openids(monkeypatch):
    import importlib

    for name, value in real_values().items():
        monkeypatch.setenv(name, value)
    production = importlib.import_module("wechat_crm.settings.production")

    stream = io.StringIO()
    config = json.loads(json.dumps(production.LOGGING))
    config["handlers"]["console"] = {**config["handlers"]["console"], "stream": stream}
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        dictConfig(config)
        logging.getLogger("gunicorn.access").warning(
            "POST /wechat/callback/?signature=x&openid=oUpF8uMuAJO_M2pxb1Q9zNjWeS6o&nonce=1 200"
        )
        logging.getLogger("x").info("sent to %s", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["WARNING", "INFO"]
    assert "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o" not in stream.getvalue()
    assert "openid=***" in lines[0]["message"]
    assert lines[1]["message"] == "sent to o***"


@pytest.mark.django_db
def test_healthz_reports_the_wechat_token_without_fetching_one(client, settings):
    from django.core.cache import cache

    from wechat_crm.wechat.tokens import cache_key

    cache.delete(cache_key(settings.WECHAT_APP_ID))
    settings.METRICS_TOKEN = "health-token-0123456789"
    body = client.get("/healthz", HTTP_AUTHORIZATION="Bearer health-token-0123456789").json()
    assert body["checks"]["wechat_token"]["ok"] is True
    assert body["checks"]["wechat_token"]["cached"] is False


@pytest.mark.django_db
def test_metrics_show_callback_latency_deliveries_and_queue_depth(client, wechat_callback, settings):
    from django.core.cache import cache

    from content.models import Delivery, Push
    from tests.accounts.factories import SubscriberFactory

    cache.delete("metrics:figures")
    settings.METRICS_TOKEN = ""
    push = Push.objects.create(name="m", status=Push.Status.SENT)
    from django.utils import timezone

    Delivery.objects.create(push=push, subscriber=SubscriberFactory(), channel="template", status="sent",
                            created_at=timezone.now())  # fmt: skip
    assert wechat_callback.post(build_message("text", Content="hi")).status_code == 200
    body = client.get("/metrics").content.decode()
    assert 'wechat_crm_callback_seconds_count{status="200"}' in body
    assert 'wechat_crm_deliveries{channel="template",status="sent"} 1.0' in body
    assert "wechat_crm_interactions_pending" in body
    if settings.REDIS_URL:
        assert 'wechat_crm_celery_queue_length{queue="outbound"}' in body


@pytest.mark.django_db
def test_metrics_require_the_token_when_one_is_configured(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


@pytest.mark.django_db
def test_metrics_show_the_clicks_waiting_in_the_click_buffer(client, settings):
    from urllib.parse import urlsplit

    from django.core.cache import cache

    from content import clicks, services
    from tests.accounts.factories import SubscriberFactory

    if not clicks.buffered():
        pytest.skip("the click buffer needs a Redis cache and PostgreSQL")
    settings.METRICS_TOKEN = ""
    clicks.buffer_clear(markers=True)
    for subscriber in (SubscriberFactory(), SubscriberFactory()):
        url = services.link_track("https://shop.example.com/item/9", subscriber_id=subscriber.pk)
        assert client.get(urlsplit(url).path).status_code == 302

    cache.delete("metrics:figures")
    body = client.get("/metrics").content.decode()
    assert "wechat_crm_link_clicks_pending 2.0" in body

    clicks.clicks_drain()
    cache.delete("metrics:figures")
    assert "wechat_crm_link_clicks_pending 0.0" in client.get("/metrics").content.decode()
