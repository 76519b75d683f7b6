"""The OpenAPI schema at /v1/schema is accurate: /v1/docs renders it, spectacular validates
it with no warning, and schemathesis finds no 5xx and no response that contradicts it on
any endpoint."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from assmbl.inputs import HEADER_TEXT_PATTERN, SPACE_CLASS, unicode_class
from directory.models import ApiToken
from directory.services import token_create
from mail.models import Message, Suppression
from mail.serializers import CONTROL_OR_FORMAT_CLASS
from mail.services import _label_forbidden
from tests.factories import MessageFactory
from tests.mime import build_mail

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Operator-only endpoints; every other one is fuzzed with an agent token.
OPERATOR_ONLY = ("/v1/agents", "/v1/approvals", "/v1/suppressions")
EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "40"))


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


def _component(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    return schema["components"]["schemas"][ref.rpartition("/")[2]]


def _json_body(schema: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = schema["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return _component(schema, ref)


def test_every_json_body_refuses_unknown_fields_as_its_schema_says(client: Any) -> None:
    schema = client.get("/v1/schema?format=json").json()
    bodies = [
        (path, method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(bodies) >= 12
    for path, method in bodies:
        assert _json_body(schema, path, method)["additionalProperties"] is False, (path, method)


def test_the_schema_states_the_bounds_the_server_checks(client: Any) -> None:
    schema = client.get("/v1/schema?format=json").json()
    sent = {p["name"]: p["schema"] for p in schema["paths"]["/v1/sent"]["get"]["parameters"]}
    assert sent["limit"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}
    assert _json_body(schema, "/v1/messages/{message_id}/read", "patch")["required"] == ["is_read"]
    assert _json_body(schema, "/v1/messages/{message_id}/archive", "patch")["required"] == ["archived"]
    display_name = _json_body(schema, "/v1/agents/{agent_id}", "patch")["properties"]["display_name"]
    assert display_name["anyOf"] == [
        {"type": "string", "maxLength": 200, "pattern": HEADER_TEXT_PATTERN},
        {"type": "string", "maxLength": 0},
    ]
    subject = _json_body(schema, "/v1/send", "post")["properties"]["subject"]["anyOf"][0]
    assert subject == {"type": "string", "maxLength": 998, "pattern": HEADER_TEXT_PATTERN}
    reply = schema["paths"]["/v1/messages/{message_id}/reply"]["post"]["requestBody"]
    assert reply["required"] is True and "anyOf" in _component(
        schema, reply["content"]["application/json"]["schema"]["$ref"]
    )
    links = schema["paths"]["/v1/send"]["post"]["responses"]["202"]["links"]
    assert links["message_get"] == {
        "operationId": "message_get",
        "parameters": {"message_id": "$response.body#/MessageID"},
    }


def test_the_label_pattern_is_the_label_rule_from_pythons_unicode_tables() -> None:
    assert unicode_class(_label_forbidden) == CONTROL_OR_FORMAT_CLASS
    assert unicode_class(str.isspace) == SPACE_CLASS


def test_spectacular_validates_the_schema_with_no_warning(tmp_path: Any) -> None:
    # Any view spectacular cannot describe (no serializer, unknown authenticator) is a
    # warning or an error here, and --fail-on-warn turns it into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


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


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_schema_violation(api_schema: Any, owner: Any, account: Any) -> None:
    operator_token = token_create(kind=ApiToken.Kind.OPERATOR, account=account).plaintext
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 35
    for operation in operations:
        token = operator_token if operation.path.startswith(OPERATOR_ONLY) else owner.token
        _fuzz(operation, token)()


def _fuzz(operation: Any, token: str) -> Any:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    def run(case: Any) -> None:
        if isinstance(case.query, dict) and str(case.query.get("wait", "")).isdigit():
            # A valid wait long-polls for that many seconds: keep 0 and 1 (the long-poll
            # path), and make longer ones 0 so the run stays short.
            case.query["wait"] = int(case.query["wait"]) if int(case.query["wait"]) <= 1 else 0
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    return run


def test_the_success_responses_match_the_schema(
    api_schema: Any, owner: Any, teammate: Any, deliver: Any, settings: Any
) -> None:
    """Random input rarely gets past validation; walk the real flows so every documented
    2xx body (and the binary downloads) is checked against the schema too."""
    settings.EMAIL_BACKEND = "mail.backends.LocalEmailBackend"
    # Nothing is delivered to it: the delivery tasks run on commit, and this test never commits.
    settings.WEBHOOKS_ALLOW_LOOPBACK = True

    def call(method: str, path: str, *, expect: int, token: str = owner.token, **kwargs: Any) -> Any:
        operation = api_schema[path][method]
        case = operation.Case(**kwargs)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        assert response.status_code == expect, response.text
        return response

    data = b"%PDF-1.4 a small report"
    ticket = call(
        "POST",
        "/v1/attachments",
        expect=201,
        body={"filename": "report.pdf", "content_type": "application/pdf", "size": len(data)},
    ).json()
    attachment_id = ticket["AttachmentID"]
    call("GET", "/v1/attachments/{attachment_id}", expect=200, path_parameters={"attachment_id": attachment_id})
    query = dict(parse_qsl(urlsplit(ticket["upload_url"]).query))
    call(
        "PUT",
        "/v1/attachments/{attachment_id}/upload",
        expect=200,
        path_parameters={"attachment_id": attachment_id},
        query=query,
        body=data,
        media_type="application/octet-stream",
        headers={"Content-Type": "application/pdf"},
    )
    sent = call(
        "POST",
        "/v1/send",
        expect=202,
        headers={"Idempotency-Key": "k1"},
        body={"to": teammate.agent.address, "subject": "Report", "body": "Attached.", "attachments": [attachment_id]},
    ).json()
    call("GET", "/v1/sent", expect=200)
    thread_id = Message.objects.get(pk=sent["MessageID"]).thread_id
    call("GET", "/v1/threads/{thread_id}", expect=200, path_parameters={"thread_id": thread_id})

    deliver(
        build_mail(to=owner.agent.address, attachments=[("notes.txt", "text/plain", b"hello")]), to=owner.agent.address
    )
    message = Message.objects.for_agent(owner.agent).inbound().filter(attachments__isnull=False).first()
    call(
        "GET",
        "/v1/messages/{message_id}/attachments/{attachment_id}",
        expect=200,
        path_parameters={"message_id": message.id, "attachment_id": message.attachments.first().id},
    )
    call("GET", "/v1/messages/{message_id}/raw", expect=200, path_parameters={"message_id": message.id})
    call(
        "POST",
        "/v1/messages/{message_id}/reply",
        expect=202,
        path_parameters={"message_id": message.id},
        body={"body": "Thanks", "reply_all": True},
    )
    call(
        "POST",
        "/v1/messages/{message_id}/forward",
        expect=202,
        path_parameters={"message_id": message.id},
        body={"to": "bob@example.com", "body": "FYI"},
    )

    entry = call(
        "POST",
        "/v1/directory/senders",
        expect=201,
        body={"address_or_domain": "example.org", "action": "block", "note": "spam"},
    ).json()
    call("GET", "/v1/directory/senders", expect=200)
    call("DELETE", "/v1/directory/senders/{entry_id}", expect=204, path_parameters={"entry_id": entry["id"]})
    call("GET", "/v1/directory/agents", expect=200, query={"q": teammate.agent.agent_id})

    hook = call("POST", "/v1/webhooks", expect=201, body={"url": "http://127.0.0.1:9/hook"}).json()
    hook_path = {"endpoint_id": hook["id"]}
    call("GET", "/v1/webhooks", expect=200)
    call("PATCH", "/v1/webhooks/{endpoint_id}", expect=200, path_parameters=hook_path, body={"description": "mine"})
    call("POST", "/v1/webhooks/{endpoint_id}/rotate-secret", expect=200, path_parameters=hook_path)
    call("GET", "/v1/webhooks/{endpoint_id}", expect=200, path_parameters=hook_path)
    call(
        "POST",
        "/v1/webhooks/{endpoint_id}/replay",
        expect=202,
        path_parameters=hook_path,
        body={"since": "2020-01-01T00:00:00Z"},
    )
    call("GET", "/v1/webhooks/{endpoint_id}/deliveries", expect=200, path_parameters=hook_path)
    events = call("GET", "/v1/events", expect=200, query={"limit": 5}).json()
    call("GET", "/v1/events", expect=200, query={"after": events["next_cursor"]})
    call("DELETE", "/v1/webhooks/{endpoint_id}", expect=204, path_parameters=hook_path)


def test_the_governed_sending_responses_match_the_schema(api_schema: Any, owner: Any, account: Any) -> None:
    """Drafts, scheduled send and cancel, the outbound policy, approvals and suppressions,
    walked to their documented 2xx bodies with the agent's and the operator's tokens."""
    operator_token = token_create(kind=ApiToken.Kind.OPERATOR, account=account).plaintext

    def call(method: str, path: str, *, expect: int, token: str = owner.token, **kwargs: Any) -> Any:
        case = api_schema[path][method].Case(**kwargs)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        assert response.status_code == expect, response.text
        return response

    body = {"to": "bob@example.com", "subject": "Plan", "body": "Go."}
    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    draft = call("POST", "/v1/drafts", expect=201, body={**body, "send_at": later}).json()
    draft_path = {"draft_id": draft["DraftID"]}
    call("GET", "/v1/drafts", expect=200, query={"limit": 10})
    call("PATCH", "/v1/drafts/{draft_id}", expect=200, path_parameters=draft_path, body={"body": "Go now."})
    sent = call(
        "POST", "/v1/drafts/{draft_id}/send", expect=202, path_parameters=draft_path, headers={"Idempotency-Key": "d1"}
    ).json()
    assert sent["Status"] == "scheduled"
    call("GET", "/v1/drafts/{draft_id}", expect=200, path_parameters=draft_path)
    call("POST", "/v1/messages/{message_id}/cancel", expect=200, path_parameters={"message_id": sent["MessageID"]})
    spare = call("POST", "/v1/drafts", expect=201, body={}).json()
    call("DELETE", "/v1/drafts/{draft_id}", expect=204, path_parameters={"draft_id": spare["DraftID"]})

    agent_path = {"agent_id": owner.agent.agent_id}
    policy = {"outbound": {"approval": "always", "allowed_recipients": ["@example.com"], "max_per_day": 10}}
    call("PATCH", "/v1/agents/{agent_id}", expect=200, token=operator_token, path_parameters=agent_path, body=policy)
    call("GET", "/v1/agents/{agent_id}", expect=200, token=operator_token, path_parameters=agent_path)
    held = [call("POST", "/v1/send", expect=202, body=body).json() for _ in range(2)]
    assert {h["Status"] for h in held} == {"pending_approval"}
    call("GET", "/v1/approvals", expect=200, token=operator_token)
    for verb, message in zip(("approve", "reject"), held, strict=True):
        call(
            "POST",
            f"/v1/approvals/{{message_id}}/{verb}",
            expect=200,
            token=operator_token,
            path_parameters={"message_id": message["MessageID"]},
            body={"note": "checked"},
        )

    Suppression.objects.create(account=account, address="carol@example.com", reason=Suppression.Reason.BOUNCE)
    call("GET", "/v1/suppressions", expect=200, token=operator_token)
    call(
        "DELETE",
        "/v1/suppressions/{address}",
        expect=204,
        token=operator_token,
        path_parameters={"address": "carol@example.com"},
    )
