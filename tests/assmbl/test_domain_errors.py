"""Services speak one error language (assmbl/domain.py); one table in assmbl/errors.py maps
it to the API's statuses, and no view translates a service's error."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from assmbl import domain
from assmbl.errors import DOMAIN_STATUS, domain_status
from tests.mail.inbox_helpers import error_code

ROOT = Path(__file__).resolve().parents[2]


def test_every_domain_error_has_its_status_in_the_one_table() -> None:
    classes = [c for _, c in inspect.getmembers(domain, inspect.isclass) if issubclass(c, domain.DomainError)]
    assert set(classes) <= set(DOMAIN_STATUS)
    assert [
        domain_status(c()) for c in (domain.Invalid, domain.NotFound, domain.Conflict, domain.TooLarge, domain.TooMany)
    ] == [
        400,
        404,
        409,
        413,
        429,
    ]


def test_a_subclass_takes_its_parents_status_and_keeps_its_own_code(db: Any) -> None:
    class Taken(domain.Conflict):
        code = "taken"

    class View(APIView):
        authentication_classes: list[Any] = []
        permission_classes: list[Any] = []

        def get(self, request: Request) -> None:
            raise Taken("Someone has it.", details={"who": "x"})

    response = View.as_view()(APIRequestFactory().get("/v1/x"))
    assert response.status_code == 409
    assert response.data == {"error": {"code": "taken", "message": "Someone has it.", "details": {"who": "x"}}}


def test_too_many_says_when_to_retry(db: Any) -> None:
    class View(APIView):
        authentication_classes: list[Any] = []
        permission_classes: list[Any] = []

        def get(self, request: Request) -> None:
            raise domain.TooMany("Slow down.", code="loop_detected", retry_after=7)

    response = View.as_view()(APIRequestFactory().get("/v1/x"))
    assert (response.status_code, response["Retry-After"]) == (429, "7")


@pytest.mark.django_db
def test_a_directory_service_error_reaches_the_client_untranslated(operator: Any) -> None:
    response = operator.post("/v1/agents", {"agent_id": "postmaster"}, format="json")
    assert response.status_code == 400
    assert error_code(response) == "invalid_agent_id"
    operator.post("/v1/agents", {"agent_id": "twice"}, format="json")
    again = operator.post("/v1/agents", {"agent_id": "twice"}, format="json")
    assert (again.status_code, error_code(again)) == (409, "agent_exists")


def _translations(path: Path) -> list[str]:
    """``file:line`` of each except clause that catches a service's error to raise an API one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            caught = ast.unparse(node.type)
            if any(name in caught for name in ("ValidationError", "DomainError", "AgentExists", "Invalid", "Conflict")):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {caught}")
    return found


def test_no_api_view_translates_a_services_error() -> None:
    views = [
        *ROOT.glob("*/api/*.py"),
        *ROOT.glob("*/api.py"),
        *ROOT.glob("*/views.py"),
        *ROOT.glob("*/sources/views.py"),
    ]
    assert [t for path in views for t in _translations(path)] == []
