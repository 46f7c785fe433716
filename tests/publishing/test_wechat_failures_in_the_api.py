"""A WeChat call that an API view makes and that fails answers JSON (502 refused, 503 try later), never a 500."""

from __future__ import annotations

import pytest

from publishing.models import MediaAsset
from tests.helpers import wechat_shared_state_clear

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

COUNT = "/cgi-bin/material/get_materialcount"


@pytest.fixture
def fake_ready(fake_wechat, settings):
    wechat_shared_state_clear(settings.WECHAT_APP_ID)
    return fake_wechat


def test_a_sync_while_wechat_is_down_answers_503_with_retry_after(staff_client, fake_ready):
    fake_ready.configure(faults=[{"path": COUNT, "status": 503}])

    response = staff_client.post("/api/media/sync/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"] and int(response["Retry-After"]) > 0
    assert MediaAsset.objects.count() == 0


def test_a_sync_wechat_refuses_answers_502_naming_the_error(staff_client, fake_ready):
    fake_ready.configure(faults=[{"path": COUNT, "errcode": 48001}])

    response = staff_client.post("/api/media/sync/")

    assert response.status_code == 502
    assert response.json()["extra"]["errcode"] == 48001
