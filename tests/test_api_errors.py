"""The one error envelope: 401, 403, 404, 405, 413, 429 on the inbox and agents API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.test import override_settings
from rest_framework.test import APIClient

from assmbl.middleware import ApiEnvelopeMiddleware
from directory.models import ApiToken
from directory.services import token_revoke
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code

pytestmark = pytest.mark.django_db


def bearer(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Token abc", "Bearer amk_000000000000_nope", "Bearer not-a-token", "Basic dXNlcjpwYXNz"],
)
def test_it_answers_a_malformed_or_unknown_token_with_401(db: Any, header: str) -> None:
    response = bearer(header).get("/v1/inbox")
    assert response.status_code == 401
    assert error_code(response) == "invalid_token"
    assert "Bearer" in response["WWW-Authenticate"]


def test_it_answers_a_revoked_token_with_401(owner: Any) -> None:
    assert owner.client.get("/v1/inbox").status_code == 200
    token_revoke(token=ApiToken.objects.get(agent=owner.agent))
    response = owner.client.get("/v1/inbox")
    assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_it_answers_a_missing_token_with_401_everywhere(anonymous: Any) -> None:
    for url in ("/v1/inbox", "/v1/inbox/unread-count", "/v1/messages/msg_x", "/v1/agents", "/v1/agents/a"):
        response = anonymous.get(url)
        assert response.status_code == 401, url
        assert error_code(response) == "unauthenticated"


def test_an_operator_token_cannot_read_an_inbox(operator: Any) -> None:
    for url in ("/v1/inbox", "/v1/inbox/unread-count", "/v1/messages/msg_x"):
        response = operator.get(url)
        assert response.status_code == 403, url
        assert error_code(response) == "forbidden"


def test_an_agent_token_cannot_use_operator_endpoints(owner: Any) -> None:
    for method, url in (
        ("get", "/v1/agents"),
        ("post", "/v1/agents"),
        ("get", "/v1/agents/owner"),
        ("delete", "/v1/agents/owner"),
        ("post", "/v1/agents/owner/tokens"),
    ):
        response = getattr(owner.client, method)(url)
        assert response.status_code == 403, url
        assert error_code(response) == "forbidden"


def test_it_answers_an_unsupported_method_with_405(owner: Any) -> None:
    response = owner.client.post("/v1/inbox", {}, format="json")
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"
    message = MessageFactory(agent=owner.agent)
    assert owner.client.put(f"/v1/messages/{message.id}/labels", {}, format="json").status_code == 405


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_it_answers_a_body_over_the_limit_with_413(owner: Any, operator: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    big = {"add": ["x" * 60] * 100}
    response = owner.client.patch(f"/v1/messages/{message.id}/labels", big, format="json")
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"
    response = operator.post("/v1/agents", {"agent_id": "a", "display_name": "x" * 5000}, format="json")
    assert response.status_code == 413


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_it_answers_413_with_the_envelope_for_any_path_under_v1(client: Any) -> None:
    response = client.post("/v1/webhooks/anything", b"x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["code"] == "payload_too_large"


def test_it_turns_request_data_too_big_from_a_plain_view_into_the_413_envelope(rf: Any) -> None:
    request = rf.post("/v1/something", data=b"x", content_type="application/octet-stream")
    response = ApiEnvelopeMiddleware(lambda r: HttpResponse()).process_exception(request, RequestDataTooBig("big"))
    assert response is not None and response.status_code == 413
    assert json.loads(response.content)["error"]["code"] == "payload_too_large"


def test_it_answers_429_with_retry_after_when_throttled(owner: Any, settings: Any) -> None:
    from django.core.cache import cache

    from assmbl.throttling import TokenRateThrottle

    cache.clear()
    original = TokenRateThrottle.THROTTLE_RATES
    TokenRateThrottle.THROTTLE_RATES = {"token": "2/min"}
    try:
        assert owner.client.get("/v1/inbox").status_code == 200
        assert owner.client.get("/v1/inbox").status_code == 200
        response = owner.client.get("/v1/inbox")
    finally:
        TokenRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert response.status_code == 429
    assert error_code(response) == "rate_limited"
    assert int(response["Retry-After"]) >= 1


@override_settings(DEBUG=True)
def test_an_unknown_path_under_v1_is_the_404_envelope_even_in_debug(owner: Any) -> None:
    response = owner.client.get("/v1/no-such-endpoint")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.postgres
@pytest.mark.skipif(not settings.IS_POSTGRES, reason="PostgreSQL refuses NUL characters; SQLite stores them")
@pytest.mark.parametrize(
    ("method", "url", "body", "code"),
    [
        # Ids are not validated before the lookup: PostgreSQL's refusal itself is the 400.
        ("get", "/v1/messages/msg%00x", None, "invalid_value"),
        ("get", "/v1/threads/thr%00x", None, "invalid_value"),
        # The input serializers refuse NUL before anything reaches the database.
        ("get", "/v1/directory/agents?q=a%00b", None, "validation_error"),
        ("post", "/v1/send", {"to": "bob@example.com", "subject": "Hi\x00", "body": "x"}, "header_injection"),
    ],
)
def test_it_answers_a_nul_character_with_400_not_503(owner: Any, method: str, url: str, body: Any, code: str) -> None:
    # Found by schemathesis: PostgreSQL's DataError was reported as "unavailable, retry".
    client = owner.client
    response = client.get(url) if body is None else client.post(url, body, format="json")
    assert response.status_code == 400
    assert error_code(response) == code
