"""Templates carry a purpose (service notice or marketing): marketing rides a template message only with a push's
explicit override, refused with the field's name otherwise (API 400, admin form error), saved with a warning in the
admin; journeys and auto-replies refuse marketing templates."""

from __future__ import annotations

import pytest

from content.models import MessageTemplate, Push

from .factories import MessageTemplateFactory
from .push_factories import SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketing():
    return MessageTemplateFactory(title="双十一", purpose=MessageTemplate.Purpose.MARKETING)


def test_existing_and_new_templates_are_service_notices():
    assert MessageTemplateFactory().purpose == "service"
    assert MessageTemplate._meta.get_field("purpose").default == "service"


@pytest.mark.usefixtures("english")
def test_the_api_refuses_a_marketing_template_push_without_the_override_naming_the_field(staff_api, marketing):
    segment = SegmentFactory()
    body = {"name": "Promo", "channel": "template", "template": marketing.pk, "segment": segment.pk}
    refused = staff_api.post("/api/pushes/", body, format="json")
    assert refused.status_code == 400
    assert list(refused.json()["extra"]["fields"]) == ["allow_marketing_template"]
    assert "marketing template" in refused.json()["message"]
    assert not Push.objects.exists()

    allowed = staff_api.post("/api/pushes/", {**body, "allow_marketing_template": True}, format="json")
    assert allowed.status_code == 201, allowed.json()
    push_id = allowed.json()["id"]
    unticked = staff_api.patch(f"/api/pushes/{push_id}/", {"allow_marketing_template": False}, format="json")
    assert unticked.status_code == 400 and "allow_marketing_template" in unticked.json()["extra"]["fields"]
    assert staff_api.post(f"/api/pushes/{push_id}/schedule/", {}, format="json").status_code == 200


@pytest.mark.usefixtures("english")
def test_the_admin_names_the_field_and_warns_when_the_override_is_ticked(staff_client, marketing):
    segment = SegmentFactory()
    form = {"name": "Promo", "channel": "template", "template": marketing.pk, "segment": segment.pk, "text": "",
            "notice_values": "{}"}  # fmt: skip
    page = staff_client.post("/admin/content/push/add/", form)
    assert page.status_code == 200
    assert "allow_marketing_template" in page.context_data["adminform"].form.errors
    assert not Push.objects.exists()

    saved = staff_client.post("/admin/content/push/add/", {**form, "allow_marketing_template": "on"}, follow=True)
    text = saved.content.decode()
    assert Push.objects.get().allow_marketing_template
    assert "may withdraw the account&#x27;s template rights" in text or "may withdraw the account's template" in text


@pytest.mark.usefixtures("english")
def test_journey_steps_and_auto_replies_refuse_a_marketing_template(staff_api, marketing):
    journey = staff_api.post("/api/journeys/", {"name": "J", "trigger": "follow"}, format="json").json()
    step = staff_api.post("/api/journey-steps/", {"journey": journey["id"], "action": "message", "text": "hi",
                                                  "template": marketing.pk}, format="json")  # fmt: skip
    assert step.status_code == 400 and list(step.json()["extra"]["fields"]) == ["template"]
    body = {"name": "r", "trigger": "text_exact", "pattern": "优惠", "reply_kind": "template", "template": marketing.pk}
    rule = staff_api.post("/api/auto-replies/", body, format="json")
    assert rule.status_code == 400 and list(rule.json()["extra"]["fields"]) == ["template"]
