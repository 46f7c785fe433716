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
