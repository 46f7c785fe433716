"""`/healthz` tells an operator or a load balancer whether the database, cache and broker answer."""

import pytest

from wechat_crm import health

TOKEN = "health-token-0123456789"


@pytest.fixture
def client(client, settings):
    """The operator's client: it sends the metrics token, which the details of /healthz need."""
    settings.METRICS_TOKEN = TOKEN
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


@pytest.mark.django_db
def test_healthz_reports_every_part_ok_when_all_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert {"database", "cache", "broker"} <= set(body["checks"])
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_healthz_answers_503_naming_the_broken_part(client, settings, monkeypatch):
    def broken() -> dict:
        raise ConnectionError("no route")

    monkeypatch.setitem(health.CHECKS, "broker", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["ok"] is False
    assert body["checks"]["broker"] == {"ok": False, "error": "ConnectionError", "ms": body["checks"]["broker"]["ms"]}
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Bearer "])
def test_the_public_learns_only_whether_the_service_is_healthy(settings, monkeypatch, authorization):
    from django.test import Client

    settings.METRICS_TOKEN = TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    assert Client().get("/healthz", **headers).json() == {"ok": True}

    monkeypatch.setitem(health.CHECKS, "broker", lambda: (_ for _ in ()).throw(ConnectionError("no route")))
    response = Client().get("/healthz", **headers)
    assert response.status_code == 503 and response.json() == {"ok": False}
    assert b"broker" not in response.content and b"Redis" not in response.content


@pytest.mark.django_db
def test_without_a_metrics_token_nobody_gets_the_details(settings):
    from django.test import Client

    settings.METRICS_TOKEN = ""
    assert Client().get("/healthz", HTTP_AUTHORIZATION="Bearer ").json() == {"ok": True}
