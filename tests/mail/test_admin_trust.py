"""Staff screens for senders, rules and challenges."""

from __future__ import annotations

from typing import Any

from directory.models import Challenge, Sender, SenderRule
from mail.trust import challenge_request
from webhooks.models import Event

ALIGNED = {"spf": "pass", "spf_domain": "example.com", "dkim": "pass", "dkim_domains": ["example.com"]}


def test_it_lists_senders_rules_and_challenges(admin_client: Any, owner: Any) -> None:
    challenge_request(agent=owner.agent, address="alice@example.com", authentication=ALIGNED)
    SenderRule.objects.create(agent=None, pattern="spam.test", action="block")

    for url in ("/admin/directory/sender/", "/admin/directory/senderrule/", "/admin/directory/challenge/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert b"alice@example.com" in admin_client.get("/admin/directory/challenge/").content
    assert admin_client.get("/admin/directory/challenge/add/").status_code == 403


def test_it_blocks_through_the_service_when_staff_add_a_rule(admin_client: Any, owner: Any) -> None:
    response = admin_client.post(
        "/admin/directory/senderrule/add/",
        {"agent": owner.agent.pk, "pattern": "Spam.test", "action": "block", "note": ""},
    )

    assert response.status_code == 302
    assert SenderRule.objects.get().pattern == "spam.test"
    assert Event.objects.filter(agent=owner.agent, type="sender.blocked").exists()


def test_it_trusts_selected_senders(admin_client: Any, owner: Any) -> None:
    sender = Sender.objects.create(agent=owner.agent, address="bob@example.com")

    admin_client.post("/admin/directory/sender/", {"action": "trust_selected", "_selected_action": [sender.pk]})

    assert Sender.objects.get(pk=sender.pk).status == "trusted"
    assert not Challenge.objects.filter(address="bob@example.com").exists()


def test_staff_add_a_global_rule_and_an_agent_rule_always_takes_its_agents_account(
    admin_client: Any, owner: Any, stranger: Any
) -> None:
    made_global = admin_client.post(
        "/admin/directory/senderrule/add/", {"agent": "", "account": "", "pattern": "spam.test", "action": "block"}
    )
    mismatched = admin_client.post(
        "/admin/directory/senderrule/add/",
        {"agent": owner.agent.pk, "account": stranger.agent.account.pk, "pattern": "x.test", "action": "block"},
    )

    assert made_global.status_code == 302
    assert SenderRule.objects.get(pattern="spam.test").scope == "global"
    assert mismatched.status_code == 200 and b"belongs to its agent" in mismatched.content
    assert not SenderRule.objects.filter(pattern="x.test").exists()
