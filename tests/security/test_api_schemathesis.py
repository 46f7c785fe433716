"""schemathesis against /api/schema/: every operation, fuzzed a few times with an admin's token (and its documented
examples sent as they are), answers without a server error, with a response that matches the schema, and every
error as JSON with a message. Kept to a handful of examples per operation so that the whole run takes a couple of
minutes."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from wechat_crm.wsgi import application


def _schema() -> dict:
    """The schema /api/schema/ serves (to staff only), generated in process: the module is imported before any
    database exists, so no user could fetch it yet."""
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(_schema())
schema.app = application
EXAMPLES = 6


def errors_are_json_with_a_message(ctx, response, case) -> bool | None:
    """Bad input never crashes and never answers HTML: a 4xx is JSON naming what was wrong."""
    if response.status_code < 400:
        return None
    headers = {name.lower(): value for name, value in response.headers.items()}
    content_type = headers.get("content-type", "")
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), f"{response.status_code} answered {content_type}"
    body = response.json()
    assert isinstance(body, dict) and body.get("message"), f"{response.status_code} without a message: {body}"
    return True


@pytest.fixture
def admin_token(django_user_model, wsgi_keeps_the_test_connection):
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.filter(username="fuzz").first() or django_user_model.objects.create_superuser(
        "fuzz", "fuzz@example.com", "fuzz-password-1"
    )
    return Token.objects.get_or_create(user=user)[0].key


@pytest.mark.django_db(transaction=False)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_answers_without_server_errors_and_as_documented(case, admin_token, fake_wechat):
    response = case.call_and_validate(
        headers={"Authorization": f"Token {admin_token}"},
        checks=[not_a_server_error, response_schema_conformance, errors_are_json_with_a_message],
    )
    assert response.status_code < 500
