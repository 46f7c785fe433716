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

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "wechat_crm.settings.production", **env},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_check_deploy_reports_nothing_with_a_secret_key_and_hosts_from_the_environment():
    result = _manage(
        "check", "--deploy", DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "?:" not in result.stderr, result.stderr


@pytest.mark.parametrize("key", [None, "short", "insecure-dev-key-change-me-in-production-0123456789xxxxxxxxxx"])
def test_production_refuses_to_start_without_a_real_secret_key(key):
    env = {"DJANGO_ALLOWED_HOSTS": "example.com"}
    if key is not None:
        env["DJANGO_SECRET_KEY"] = key
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_logs_are_json_lines_without_openids(monkeypatch):
    import importlib

    monkeypatch.setenv("DJANGO_SECRET_KEY", secrets.token_urlsafe(64))
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "example.com")
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
    body = client.get("/healthz").json()
    assert body["checks"]["wechat_token"]["ok"] is True
    assert body["checks"]["wechat_token"]["cached"] is False


@pytest.mark.django_db
def test_metrics_show_callback_latency_deliveries_and_queue_depth(client, wechat_callback, settings):
    from django.core.cache import cache

    from content.models import Delivery, Push
    from tests.factories import SubscriberFactory

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
