"""Operator endpoints: /v1/agents (create, list, get, patch, deactivate, rotate)."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from directory.models import Account, Agent, ApiToken
from directory.services import token_create
from mail.content.safety import FLAG_ORDER
from tests.mail.inbox_helpers import error_code

pytestmark = pytest.mark.django_db


def agent_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def other_operator(db: Any) -> APIClient:
    issued = token_create(kind=ApiToken.Kind.OPERATOR, account=Account.objects.create(name="other"))
    return agent_client(issued.plaintext)


def test_it_creates_an_agent_and_returns_its_token_once(operator: Any) -> None:
    response = operator.post(
        "/v1/agents", {"agent_id": "Support", "display_name": "Support bot", "policy": "challenge"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["agent_id"] == "support" and body["address"] == "support@agents.localhost"
    assert body["policy"] == "challenge" and body["display_name"] == "Support bot" and body["is_active"] is True
    assert agent_client(body["token"]).get("/v1/inbox").status_code == 200
    assert "token" not in operator.get("/v1/agents/support").json()


def test_it_answers_409_agent_exists(operator: Any, other_operator: Any) -> None:
    assert operator.post("/v1/agents", {"agent_id": "dup"}, format="json").status_code == 201
    response = operator.post("/v1/agents", {"agent_id": "dup"}, format="json")
    assert response.status_code == 409 and error_code(response) == "agent_exists"
    # Addresses are global: another account cannot take it either.
    assert other_operator.post("/v1/agents", {"agent_id": "dup"}, format="json").status_code == 409


@pytest.mark.parametrize(
    "body", [{}, {"agent_id": ""}, {"agent_id": "no spaces"}, {"agent_id": "a..b"}, {"agent_id": "x", "policy": "nope"}]
)
def test_it_rejects_an_invalid_agent(operator: Any, body: Any) -> None:
    response = operator.post("/v1/agents", body, format="json")
    assert response.status_code == 400
    assert error_code(response) in {"validation_error", "invalid_agent_id"}


def test_it_lists_the_accounts_agents_in_pages(operator: Any, owner: Any, stranger: Any) -> None:
    for i in range(3):
        operator.post("/v1/agents", {"agent_id": f"bot{i}"}, format="json")
    first = operator.get("/v1/agents?limit=2").json()
    assert first["has_more"] is True and len(first["items"]) == 2
    second = operator.get(f"/v1/agents?limit=2&cursor={first['next_cursor']}").json()
    listed = [a["agent_id"] for a in first["items"] + second["items"]]
    # owner is in the operator's account; stranger is not.
    assert sorted(listed) == ["bot0", "bot1", "bot2", "owner"]
    assert operator.get("/v1/agents?limit=0").status_code == 400
    assert operator.get("/v1/agents?bogus=1").status_code == 400


def test_it_gets_and_patches_an_agent(operator: Any, owner: Any) -> None:
    assert operator.get("/v1/agents/owner").json()["agent_id"] == "owner"
    response = operator.patch("/v1/agents/owner", {"policy": "verified_only", "display_name": "O"}, format="json")
    assert response.status_code == 200
    assert response.json()["policy"] == "verified_only" and response.json()["display_name"] == "O"
    assert Agent.objects.get(agent_id="owner").policy == "verified_only"
    bad = operator.patch("/v1/agents/owner", {"policy": "everyone"}, format="json")
    assert bad.status_code == 400


def test_it_deactivates_an_agent_and_revokes_its_tokens(operator: Any, owner: Any) -> None:
    response = operator.delete("/v1/agents/owner")
    assert response.status_code == 204
    assert owner.client.get("/v1/inbox").status_code == 401
    assert operator.get("/v1/agents/owner").json()["is_active"] is False
    assert operator.post("/v1/agents/owner/tokens").status_code == 409


def test_it_rotates_the_token(operator: Any, owner: Any) -> None:
    response = operator.post("/v1/agents/owner/tokens")
    assert response.status_code == 201
    assert owner.client.get("/v1/inbox").status_code == 401
    assert agent_client(response.json()["token"]).get("/v1/inbox").status_code == 200


def test_another_accounts_agent_is_404(operator: Any, stranger: Any) -> None:
    for method, url, body in (
        ("get", "/v1/agents/stranger", None),
        ("patch", "/v1/agents/stranger", {"display_name": "x"}),
        ("delete", "/v1/agents/stranger", None),
        ("post", "/v1/agents/stranger/tokens", None),
    ):
        foreign = getattr(operator, method)(url, body, format="json")
        unknown = getattr(operator, method)(url.replace("stranger", "nobody"), body, format="json")
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.content == unknown.content
    assert stranger.client.get("/v1/inbox").status_code == 200


@pytest.mark.parametrize("agent_id", ["postmaster", "PostMaster"])
def test_it_refuses_the_reserved_postmaster_id(operator: Any, agent_id: str) -> None:
    response = operator.post("/v1/agents", {"agent_id": agent_id}, format="json")
    assert response.status_code == 400 and error_code(response) == "invalid_agent_id"
    assert "reserved" in response.json()["error"]["message"]
    assert not Agent.objects.filter(agent_id="postmaster").exists()


@pytest.mark.parametrize("display_name", [0, True, ["Support"], None])
def test_it_refuses_a_display_name_that_is_not_a_string(operator: Any, owner: Any, display_name: Any) -> None:
    response = operator.patch("/v1/agents/owner", {"display_name": display_name}, format="json")

    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "display_name" in response.json()["error"]["details"]
    assert Agent.objects.get(pk=owner.agent.pk).display_name == ""


@pytest.mark.parametrize("display_name", ["Bot\r\nBcc: x@example.com", "Bot\x0bX", "Bot\x00", "x" * 201])
def test_it_refuses_a_display_name_unfit_for_a_from_header(operator: Any, display_name: str) -> None:
    response = operator.post("/v1/agents", {"agent_id": "bot", "display_name": display_name}, format="json")

    assert response.status_code == 400
    assert error_code(response) == "validation_error"
    assert "display_name" in response.json()["error"]["details"]
    assert not Agent.objects.filter(agent_id="bot").exists()


def test_it_refuses_an_unknown_field_instead_of_ignoring_it(operator: Any, owner: Any) -> None:
    response = operator.patch("/v1/agents/owner", {"display_name": "O", "is_active": False}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_field"
    assert response.json()["error"]["details"] == {"unknown": ["is_active"], "field": "is_active"}
    agent = Agent.objects.get(pk=owner.agent.pk)
    assert agent.display_name == "" and agent.is_active


def test_an_operator_sets_the_flags_that_hold_an_agents_mail(operator: Any, owner: Any) -> None:
    response = operator.patch("/v1/agents/owner", {"hold_on": ["instructions_to_model", "hidden_text"]}, format="json")
    assert response.status_code == 200
    assert response.json()["hold_on"] == ["hidden_text", "instructions_to_model"]
    assert Agent.objects.get(agent_id="owner").hold_on == ["hidden_text", "instructions_to_model"]
    assert operator.get("/v1/agents/owner").json()["hold_on"] == ["hidden_text", "instructions_to_model"]
    assert operator.patch("/v1/agents/owner", {"hold_on": []}, format="json").json()["hold_on"] == []


@pytest.mark.parametrize("hold_on", [["spam"], "instructions_to_model", [1], [None]])
def test_it_refuses_an_unknown_hold_on_flag(operator: Any, owner: Any, hold_on: Any) -> None:
    response = operator.patch("/v1/agents/owner", {"hold_on": hold_on}, format="json")
    assert response.status_code == 400
    assert Agent.objects.get(agent_id="owner").hold_on == []


def test_the_hold_on_flags_are_the_content_services_flags() -> None:
    assert list(Agent.HoldFlag.values) == list(FLAG_ORDER)
