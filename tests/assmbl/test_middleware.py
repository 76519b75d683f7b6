"""assmbl/middleware.py: errors Django makes before or around DRF still get the envelope
under /v1 (issue 21, item 8)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.http import HttpResponse, HttpResponseBadRequest
from django.test import override_settings

from assmbl.middleware import ApiEnvelopeMiddleware
from tests.mail.inbox_helpers import error_code

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
def test_a_host_outside_allowed_hosts_is_400_invalid_host(owner: Any, debug: bool) -> None:
    with override_settings(DEBUG=debug):
        response = owner.client.get("/v1/inbox", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert error_code(response) == "invalid_host"


def test_a_host_outside_allowed_hosts_is_still_django_s_page_outside_the_api(client: Any) -> None:
    response = client.get("/admin/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("status", [400, 403, 405, 500])
def test_an_html_error_page_under_v1_becomes_the_envelope(rf: Any, status: int) -> None:
    page = HttpResponseBadRequest("<h1>Bad Request (400)</h1>", status=status)
    response = ApiEnvelopeMiddleware(lambda request: page)(rf.get("/v1/inbox"))
    assert response.status_code == status
    body = json.loads(response.content)
    assert set(body["error"]) == {"code", "message", "details"}
    assert (
        body["error"]["code"]
        == {400: "bad_request", 403: "forbidden", 405: "method_not_allowed", 500: "internal_error"}[status]
    )


def test_an_html_page_outside_the_api_is_left_alone(rf: Any) -> None:
    page = HttpResponse("<h1>Server Error (500)</h1>", status=500)
    assert ApiEnvelopeMiddleware(lambda request: page)(rf.get("/admin/")) is page
