"""The OpenAPI schema at /v1/schema is accurate: /v1/docs renders it, spectacular validates
it with no warning, and schemathesis finds no 5xx and no response that contradicts it on
any endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from directory.models import ApiToken
from directory.services import token_create
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Operator-only endpoints; every other one is fuzzed with an agent token.
OPERATOR_ONLY = ("/v1/agents",)


def test_the_schema_documents_bearer_auth_and_the_error_envelope(client: Any) -> None:
    response = client.get("/v1/schema?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An agent token (amk_...) or an operator token (amo_...).",
    }
    assert "Error" in schema["components"]["schemas"]
    inbox = schema["paths"]["/v1/inbox"]["get"]
    assert {p["name"] for p in inbox["parameters"]} >= {
        "limit",
        "cursor",
        "q",
        "label",
        "is_read",
        "include_archived",
        "verified_only",
    }
    assert {"200", "400", "401", "429"} <= set(inbox["responses"])


def test_the_docs_page_renders(client: Any) -> None:
    response = client.get("/v1/docs")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    # Served from our own static files (drf-spectacular-sidecar), not a CDN.
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in response.content
    assert b"cdn." not in response.content


@pytest.fixture
def api_schema(owner: Any) -> Iterator[Any]:
    MessageFactory.create_batch(3, agent=owner.agent)
    # As Django's test client does: keep the test's connection (and its transaction) open
    # across requests instead of closing it when each WSGI request finishes.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/v1/schema?format=json", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_schemathesis_finds_no_5xx_and_no_schema_violation(api_schema: Any, owner: Any, account: Any) -> None:
    operator_token = token_create(kind=ApiToken.Kind.OPERATOR, account=account).plaintext
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 35
    for operation in operations:
        token = operator_token if operation.path.startswith(OPERATOR_ONLY) else owner.token
        _fuzz(operation, token)()


def _fuzz(operation: Any, token: str) -> Any:
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    return run
