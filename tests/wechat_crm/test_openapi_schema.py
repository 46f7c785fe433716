"""The OpenAPI schema is generated without a warning and documents every endpoint under /api/."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

# The schema and the docs page serve the schema itself (SERVE_INCLUDE_SCHEMA = False).
NOT_DOCUMENTED = {"/api/schema/", "/api/docs/"}


def _route(pattern) -> str:
    """A URL pattern's text in OpenAPI's form: `<int:pk>` and `(?P<pk>...)` become `{pk}`, anchors dropped; a
    primary key is `{id}` as drf-spectacular names it (SCHEMA_COERCE_PATH_PK)."""
    text = str(pattern.pattern)
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)
    text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)
    return text.lstrip("^").rstrip("$").replace("\\", "").replace("{pk}", "{id}")


def _api_urls(resolver: URLResolver, prefix: str = "/") -> set[str]:
    urls = set()
    for entry in resolver.url_patterns:
        route = prefix + _route(entry)
        if "{format}" in route:  # DRF's format-suffix variants of the same endpoints
            continue
        if isinstance(entry, URLResolver):
            urls |= _api_urls(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith("/api/"):
            urls.add(route)
    return urls


@pytest.fixture
def schema(tmp_path) -> dict:
    target = tmp_path / "schema.yaml"
    # --fail-on-warn raises SchemaGenerationError (the test fails) on any warning or error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    return yaml.safe_load(target.read_text())


@pytest.mark.django_db
def test_schema_validates_without_warnings(schema):
    assert schema["openapi"].startswith("3.")
    assert schema["paths"]


@pytest.mark.django_db
def test_every_api_url_is_in_the_schema(schema):
    urls = _api_urls(get_resolver()) - NOT_DOCUMENTED
    assert "/api/subscribers/{id}/score/" in urls  # the walk finds the API's URLs
    missing = sorted(urls - set(schema["paths"]))
    assert missing == []


@pytest.mark.django_db
def test_the_score_endpoint_documents_its_fields(schema):
    response = schema["paths"]["/api/subscribers/{id}/score/"]["get"]["responses"]["200"]
    ref = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][ref]["properties"]
    assert set(properties) == {"id", "score", "entries", "window"}


def _typed(prop: dict) -> bool:
    return any(key in prop for key in ("type", "$ref", "allOf", "oneOf", "anyOf", "enum"))


@pytest.mark.django_db
def test_every_property_of_every_component_has_a_type(schema):
    untyped = []
    for name, component in schema["components"]["schemas"].items():
        for prop_name, prop in (component.get("properties") or {}).items():
            if not _typed(prop):
                untyped.append(f"{name}.{prop_name}")
            elif prop.get("type") == "array" and not _typed(prop.get("items", {})):
                untyped.append(f"{name}.{prop_name}[]")
    assert untyped == []
    # SerializerMethodFields are typed by what they return, not the string fallback.
    assert schema["components"]["schemas"]["Segment"]["properties"]["recipients"]["type"] == "integer"
    assert schema["components"]["schemas"]["Segment"]["properties"]["rules"]["type"] == "object"
    assert _typed(schema["components"]["schemas"]["Subscriber"]["properties"]["preferences"])
    assert schema["components"]["schemas"]["Subscriber"]["properties"]["display_name"]["type"] == "string"
    assert schema["components"]["schemas"]["Conversion"]["properties"]["attributes"]["type"] == "object"


@pytest.mark.django_db
def test_conversions_and_segments_come_with_examples(schema):
    def examples(path: str, method: str) -> tuple[set[str], set[str]]:
        operation = schema["paths"][path][method]
        request = set(operation["requestBody"]["content"]["application/json"].get("examples", {}))
        responses = set()
        for answer in operation["responses"].values():
            responses |= set(answer.get("content", {}).get("application/json", {}).get("examples", {}))
        return request, responses

    request, responses = examples("/api/conversions/", "post")
    assert {"OnePurchase", "ABatch"} <= request and {"Stored", "OneRefused"} <= responses
    request, responses = examples("/api/segments/", "post")
    assert request and responses
    example = next(iter(schema["paths"]["/api/segments/"]["post"]["requestBody"]["content"]["application/json"]
                        ["examples"].values()))["value"]  # fmt: skip
    assert {r.get("type") or r.get("op") for r in example["rules"]["rules"]} >= {"tags", "stage", "or", "score"}


@pytest.mark.django_db
def test_the_conversion_examples_are_what_the_api_takes(schema, django_user_model):
    from rest_framework.test import APIClient

    from accounts.models import Subscriber

    Subscriber.objects.create(openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", unionid="o6_bmasdasdsad6_2sgVt7hMZOPfL")
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_superuser("examples", "e@example.com", "pw"))
    for example in schema["paths"]["/api/conversions/"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ].values():
        response = client.post("/api/conversions/", example["value"], format="json")
        assert response.status_code == 201, response.content
