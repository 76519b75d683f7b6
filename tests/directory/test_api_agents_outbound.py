"""PATCH /v1/agents/{id} {"outbound": ...}: the operator sets an agent's outbound policy."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from directory.models import ApiToken, OutboundPolicy
from directory.services import token_create

pytestmark = pytest.mark.django_db


def test_it_reports_the_default_policy_of_an_agent_without_one(operator: Any, owner: Any) -> None:
    response = operator.get("/v1/agents/owner")

    assert response.status_code == 200
    assert response.json()["outbound"] == {
        "approval": "never",
        "allowed_recipients": [],
        "max_per_hour": None,
        "max_per_day": None,
        "undo_seconds": 0,
    }


def test_it_sets_and_then_changes_part_of_the_policy(operator: Any, owner: Any) -> None:
    body = {
        "outbound": {
            "approval": "external",
            "allowed_recipients": ["Bob@Example.com", "@Partner.example"],
            "max_per_hour": 10,
            "max_per_day": 100,
            "undo_seconds": 30,
        }
    }
    response = operator.patch("/v1/agents/owner", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["outbound"]["allowed_recipients"] == ["bob@example.com", "@partner.example"]

    response = operator.patch("/v1/agents/owner", {"outbound": {"max_per_hour": None}}, format="json")

    assert response.status_code == 200, response.content
    policy = OutboundPolicy.objects.get(agent=owner.agent)
    assert (policy.approval, policy.max_per_hour, policy.max_per_day, policy.undo_seconds) == (
        "external",
        None,
        100,
        30,
    )


@pytest.mark.parametrize(
    ("outbound", "field"),
    [
        ({"approval": "sometimes"}, "outbound.approval"),
        ({"allowed_recipients": ["not an address"]}, "outbound.allowed_recipients"),
        ({"allowed_recipients": ["@"]}, "outbound.allowed_recipients"),
        ({"max_per_hour": 0}, "outbound.max_per_hour"),
        ({"max_per_day": "5"}, "outbound.max_per_day"),
        ({"undo_seconds": 3601}, "outbound.undo_seconds"),
    ],
)
def test_it_refuses_a_malformed_policy(operator: Any, owner: Any, outbound: dict[str, Any], field: str) -> None:
    response = operator.patch("/v1/agents/owner", {"outbound": outbound}, format="json")

    assert response.status_code == 400, response.content
    assert not OutboundPolicy.objects.filter(agent=owner.agent).exists()


def test_it_refuses_an_unknown_policy_field(operator: Any, owner: Any) -> None:
    response = operator.patch("/v1/agents/owner", {"outbound": {"max_per_week": 3}}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_field"


def test_an_agent_token_cannot_set_its_own_policy(owner: Any) -> None:
    response = owner.client.patch("/v1/agents/owner", {"outbound": {"approval": "never"}}, format="json")

    assert response.status_code == 403


def test_an_operator_of_another_account_gets_404(owner: Any, stranger: Any) -> None:
    issued = token_create(kind=ApiToken.Kind.OPERATOR, account=stranger.agent.account)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")

    response = client.patch("/v1/agents/owner", {"outbound": {"approval": "never"}}, format="json")

    assert response.status_code == 404
