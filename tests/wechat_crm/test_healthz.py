"""`/healthz` tells an operator or a load balancer whether the database, cache and broker answer."""

import pytest

from wechat_crm import health


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
