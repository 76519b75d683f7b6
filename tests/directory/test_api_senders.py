"""GET/POST/DELETE /v1/directory/senders and GET /v1/directory/agents."""

from __future__ import annotations

from typing import Any

import pytest

from directory.models import Sender, SenderRule
from webhooks.models import Event


def test_it_trusts_a_sender_for_the_calling_agent(owner: Any) -> None:
    response = owner.client.post(
        "/v1/directory/senders", {"address_or_domain": "Alice@Example.com", "action": "trust"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["address_or_domain"] == "alice@example.com" and body["status"] == "trusted"
    assert body["agent_id"] == "owner" and body["id"].startswith("snd_")
    assert Event.objects.filter(agent=owner.agent, type="sender.verified").exists()


def test_it_blocks_a_domain_and_emits_sender_blocked(owner: Any) -> None:
    response = owner.client.post(
        "/v1/directory/senders", {"address_or_domain": "spam.test", "action": "block"}, format="json"
    )

    assert response.status_code == 201 and response.json()["status"] == "blocked"
    assert SenderRule.objects.get(agent=owner.agent).pattern == "spam.test"
    event = Event.objects.get(agent=owner.agent, type="sender.blocked")
    assert event.payload["AddressOrDomain"] == "spam.test"


def test_it_lists_senders_with_status_last_seen_and_count(owner: Any, teammate: Any, deliver: Any) -> None:
    from tests.mime import build_mail

    deliver(build_mail(to=owner.address, sender="bob@example.com"), to=owner.address)
    owner.client.post("/v1/directory/senders", {"address_or_domain": "spam.test", "action": "block"}, format="json")
    teammate.client.post("/v1/directory/senders", {"address_or_domain": "eve@x.test", "action": "trust"}, format="json")

    items = owner.client.get("/v1/directory/senders").json()["items"]

    by_address = {i["address_or_domain"]: i for i in items}
    assert set(by_address) == {"bob@example.com", "spam.test"}
    assert by_address["bob@example.com"]["status"] == "unknown"
    assert by_address["bob@example.com"]["message_count"] == 1 and by_address["bob@example.com"]["last_seen_at"]


def test_it_deletes_only_its_own_entries(owner: Any, teammate: Any) -> None:
    mine = owner.client.post(
        "/v1/directory/senders", {"address_or_domain": "a@b.test", "action": "trust"}, format="json"
    ).json()

    assert teammate.client.delete(f"/v1/directory/senders/{mine['id']}").status_code == 404
    assert owner.client.delete("/v1/directory/senders/rul_999").status_code == 404
    assert owner.client.delete(f"/v1/directory/senders/{mine['id']}").status_code == 204
    assert not Sender.objects.exists()


def test_it_refuses_global_rules_and_other_agents_for_agent_tokens(owner: Any, teammate: Any) -> None:
    global_rule = owner.client.post(
        "/v1/directory/senders", {"address_or_domain": "x.test", "action": "block", "scope": "global"}, format="json"
    )
    other = owner.client.post(
        "/v1/directory/senders",
        {"address_or_domain": "x.test", "action": "block", "agent_id": "teammate"},
        format="json",
    )

    assert global_rule.status_code == 403 and global_rule.json()["error"]["code"] == "forbidden_scope"
    assert other.status_code == 404 and other.json()["error"]["code"] == "agent_not_found"
    assert not SenderRule.objects.exists()


def test_it_lets_an_operator_act_for_agents_of_its_account_and_globally(
    operator: Any, owner: Any, stranger: Any
) -> None:
    for_owner = operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "a@b.test", "action": "allow", "agent_id": "owner"},
        format="json",
    )
    for_stranger = operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "a@b.test", "action": "allow", "agent_id": "stranger"},
        format="json",
    )
    global_rule = operator.post(
        "/v1/directory/senders", {"address_or_domain": "spam.test", "action": "block", "scope": "global"}, format="json"
    )
    missing = operator.post(
        "/v1/directory/senders", {"address_or_domain": "a@b.test", "action": "allow"}, format="json"
    )

    assert for_owner.status_code == 201 and for_owner.json()["agent_id"] == "owner"
    assert for_stranger.status_code == 404
    assert global_rule.status_code == 201 and global_rule.json()["scope"] == "global"
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "agent_id_required"
    listed = operator.get("/v1/directory/senders?agent_id=owner").json()["items"]
    assert [i["address_or_domain"] for i in listed] == ["a@b.test"]


def test_it_validates_the_entry(owner: Any) -> None:
    for body in (
        {"address_or_domain": "not a domain", "action": "block"},
        {"address_or_domain": "b.test", "action": "trust"},
        {"address_or_domain": "b.test", "action": "love"},
        {"action": "block"},
    ):
        response = owner.client.post("/v1/directory/senders", body, format="json")
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"code", "message", "details"}


def test_it_needs_a_token(anonymous: Any, db: Any) -> None:
    assert anonymous.get("/v1/directory/senders").status_code == 401
    assert anonymous.get("/v1/directory/agents?q=owner").status_code == 401


def test_it_looks_up_agents_of_the_deployment_by_id_or_address(owner: Any, stranger: Any) -> None:
    by_id = owner.client.get("/v1/directory/agents?q=stranger").json()["items"]
    by_address = owner.client.get(f"/v1/directory/agents?q={stranger.address}").json()["items"]
    foreign = owner.client.get("/v1/directory/agents?q=stranger@elsewhere.test").json()["items"]

    assert by_id == [{"agent_id": "stranger", "address": stranger.address, "display_name": ""}]
    assert by_address == by_id and foreign == []
    assert owner.client.get("/v1/directory/agents").status_code == 400


@pytest.mark.parametrize("url", ["/v1/directory/senders?colour=red", "/v1/directory/agents?q=owner&colour=red"])
def test_an_unknown_query_parameter_is_400(owner: Any, url: str) -> None:
    response = owner.client.get(url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_parameter"
