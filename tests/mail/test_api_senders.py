"""GET/POST/DELETE /v1/directory/senders and GET /v1/directory/agents."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from directory.models import ApiToken, Sender, SenderRule
from directory.services import token_create
from mail.models import Message
from mail.trust import sender_blocked, sender_entry_create
from tests.mime import build_mail
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


def test_it_refuses_global_and_account_rules_and_other_agents_for_agent_tokens(owner: Any, teammate: Any) -> None:
    global_rule = owner.client.post(
        "/v1/directory/senders", {"address_or_domain": "x.test", "action": "block", "scope": "global"}, format="json"
    )
    account_rule = owner.client.post(
        "/v1/directory/senders", {"address_or_domain": "x.test", "action": "block", "scope": "account"}, format="json"
    )
    other = owner.client.post(
        "/v1/directory/senders",
        {"address_or_domain": "x.test", "action": "block", "agent_id": "teammate"},
        format="json",
    )

    assert global_rule.status_code == 400 and global_rule.json()["error"]["code"] == "scope_not_allowed"
    assert account_rule.status_code == 403 and account_rule.json()["error"]["code"] == "forbidden_scope"
    assert other.status_code == 404 and other.json()["error"]["code"] == "agent_not_found"
    assert not SenderRule.objects.exists()


def test_it_lets_an_operator_act_for_agents_of_its_account_and_for_the_account(
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
    account_rule = operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "spam.test", "action": "block", "scope": "account"},
        format="json",
    )
    both = operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "spam.test", "action": "block", "scope": "account", "agent_id": "owner"},
        format="json",
    )
    missing = operator.post(
        "/v1/directory/senders", {"address_or_domain": "a@b.test", "action": "allow"}, format="json"
    )

    assert for_owner.status_code == 201 and for_owner.json()["agent_id"] == "owner"
    assert for_stranger.status_code == 404
    assert account_rule.status_code == 201
    assert account_rule.json()["scope"] == "account" and account_rule.json()["agent_id"] is None
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_scope"
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "agent_id_required"
    listed = operator.get("/v1/directory/senders?agent_id=owner").json()["items"]
    assert [i["address_or_domain"] for i in listed] == ["a@b.test"]
    everything = operator.get("/v1/directory/senders").json()["items"]
    assert {(i["address_or_domain"], i["scope"]) for i in everything} == {
        ("a@b.test", "agent"),
        ("spam.test", "account"),
    }


# --- two accounts: one operator's rules never reach the other account ----------------------


@pytest.fixture
def stranger_operator(stranger: Any) -> APIClient:
    """The operator of the stranger's account."""
    issued = token_create(kind=ApiToken.Kind.OPERATOR, account=stranger.agent.account)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def test_an_operator_cannot_make_a_rule_for_every_account(stranger_operator: Any, owner: Any) -> None:
    for action in ("block", "allow"):
        response = stranger_operator.post(
            "/v1/directory/senders",
            {"address_or_domain": "partner.test", "action": action, "scope": "global"},
            format="json",
        )

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "scope_not_allowed"
        assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not SenderRule.objects.exists()


def test_an_operator_neither_sees_nor_deletes_another_accounts_rules(
    operator: Any, stranger_operator: Any, owner: Any, stranger: Any
) -> None:
    ours = operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "spam.test", "action": "block", "scope": "account"},
        format="json",
    ).json()
    ours_for_owner = operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "eve@spam.test", "action": "block", "agent_id": "owner"},
        format="json",
    ).json()
    staff_global = sender_entry_create(agent=None, address_or_domain="global.test", action="block")

    theirs = stranger_operator.get("/v1/directory/senders").json()["items"]

    assert theirs == []
    for entry_id in (ours["id"], ours_for_owner["id"], f"rul_{staff_global.pk}"):
        response = stranger_operator.delete(f"/v1/directory/senders/{entry_id}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "sender_not_found"
    # Staff's global rule is not the operator's to list or delete either.
    assert operator.delete(f"/v1/directory/senders/rul_{staff_global.pk}").status_code == 404
    assert "global.test" not in {i["address_or_domain"] for i in operator.get("/v1/directory/senders").json()["items"]}
    assert SenderRule.objects.count() == 3
    assert operator.delete(f"/v1/directory/senders/{ours['id']}").status_code == 204


def test_an_account_rule_decides_mail_only_for_that_accounts_agents(
    operator: Any, stranger_operator: Any, owner: Any, teammate: Any, stranger: Any, deliver: Any
) -> None:
    stranger_operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "spam.test", "action": "block", "scope": "account"},
        format="json",
    )
    operator.post(
        "/v1/directory/senders",
        {"address_or_domain": "spam.test", "action": "block", "agent_id": "teammate"},
        format="json",
    )
    raw = build_mail(to=[owner.address, teammate.address, stranger.address], sender="ceo@spam.test")

    deliver(raw, to=[owner.address, teammate.address, stranger.address])

    dispositions = dict(Message.objects.values_list("agent__agent_id", "disposition"))
    assert dispositions == {"owner": "inbox", "teammate": "blocked", "stranger": "blocked"}
    assert sender_blocked(agent=owner.agent, sender="ceo@spam.test") == ""
    assert sender_blocked(agent=stranger.agent, sender="ceo@spam.test")


def test_a_staff_global_rule_still_decides_mail_for_every_account(owner: Any, stranger: Any, deliver: Any) -> None:
    sender_entry_create(agent=None, address_or_domain="spam.test", action="block")

    deliver(
        build_mail(to=[owner.address, stranger.address], sender="ceo@spam.test"), to=[owner.address, stranger.address]
    )

    assert set(Message.objects.values_list("disposition", flat=True)) == {"blocked"}


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


def test_an_address_lookup_routes_as_mail_does(owner: Any, stranger: Any) -> None:
    domain = stranger.address.split("@")[1]
    tagged = owner.client.get(f"/v1/directory/agents?q=Stranger%2Bnews@{domain.upper()}").json()["items"]
    no_agent = owner.client.get(f"/v1/directory/agents?q=%2Bnews@{domain}").json()["items"]

    assert [i["agent_id"] for i in tagged] == ["stranger"]
    # "+news@domain" reaches no agent (mail.addresses): the lookup listed every agent.
    assert no_agent == []
