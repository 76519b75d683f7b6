"""Agents and tokens in the console: the token is shown once and works; rotation and
revocation go through the directory services; a moderator can do neither."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.messages import get_messages
from django.test import Client

from directory.models import Agent, OutboundPolicy
from directory.services import token_authenticate
from mail.models import Message
from tests.mime import build_mail

TOKEN = re.compile(r"amk_[0-9a-f]{12}_[\w-]+")


def _token_in(response: Any) -> str:
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    match = TOKEN.search(text)
    assert match, text
    return match.group(0)


def test_creating_an_agent_shows_a_working_token_once(superuser_client: Client, account: Any) -> None:
    response = superuser_client.post(
        "/admin/directory/agent/add/",
        {"agent_id": "helpdesk", "account": account.pk, "display_name": "Help desk", "policy": "challenge"},
        follow=True,
    )
    token = _token_in(response)
    assert token_authenticate(token).agent.agent_id == "helpdesk"
    assert Agent.objects.get(agent_id="helpdesk").policy == "challenge"
    assert token not in superuser_client.get("/admin/directory/apitoken/").content.decode()


def test_rotating_revokes_the_old_token_and_shows_the_new_one(superuser_client: Client, owner: Any) -> None:
    response = superuser_client.post(
        "/admin/directory/agent/", {"action": "rotate_token", "_selected_action": [owner.agent.pk]}, follow=True
    )
    new = _token_in(response)
    assert token_authenticate(owner.token) is None
    assert token_authenticate(new).agent == owner.agent


def test_revoking_a_token_stops_it_working(superuser_client: Client, owner: Any) -> None:
    token = owner.agent.tokens.get()
    superuser_client.post("/admin/directory/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert token_authenticate(owner.token) is None


def test_changing_the_policy_goes_through_the_service(superuser_client: Client, owner: Any) -> None:
    response = superuser_client.post(
        f"/admin/directory/agent/{owner.agent.pk}/change/", {"display_name": "Owner bot", "policy": "verified_only"}
    )
    assert response.status_code == 302
    owner.agent.refresh_from_db()
    assert (owner.agent.display_name, owner.agent.policy) == ("Owner bot", "verified_only")


def test_the_list_shows_counts_and_links_to_the_agents_mail(superuser_client: Client, owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address), to=owner.address)
    Message.objects.create(
        agent=owner.agent, direction="inbound", disposition="held", received_at=Message.objects.get().received_at
    )
    body = superuser_client.get("/admin/directory/agent/").content.decode()
    assert 'class="field-unread">1<' in body and 'class="field-held">1<' in body
    assert f"/admin/mail/message/?agent__id__exact={owner.agent.pk}" in body


def test_a_moderator_cannot_create_agents_or_rotate_tokens(moderator_client: Client, owner: Any, account: Any) -> None:
    assert moderator_client.get("/admin/directory/agent/add/").status_code == 403
    response = moderator_client.post(
        "/admin/directory/agent/", {"action": "rotate_token", "_selected_action": [owner.agent.pk]}
    )
    assert response.status_code == 403
    assert token_authenticate(owner.token) is not None


def test_staff_cannot_create_an_agent_with_the_reserved_postmaster_id(superuser_client: Client, account: Any) -> None:
    response = superuser_client.post(
        "/admin/directory/agent/add/", {"agent_id": "Postmaster", "account": account.pk, "policy": "open"}
    )
    assert response.status_code == 200
    assert "reserved" in response.content.decode()
    assert not Agent.objects.filter(agent_id="postmaster").exists()


def test_staff_set_an_agents_outbound_policy(superuser_client: Client, owner: Any) -> None:
    response = superuser_client.post(
        "/admin/directory/outboundpolicy/add/",
        {
            "agent": owner.agent.pk,
            "approval": "always",
            "allowed_recipients": "Bob@example.com\n@partner.example\n",
            "max_per_hour": "5",
            "max_per_day": "",
            "undo_seconds": "10",
        },
    )

    assert response.status_code == 302, response.content.decode()[-3000:]
    policy = OutboundPolicy.objects.get(agent=owner.agent)
    assert policy.as_dict() == {
        "approval": "always",
        "allowed_recipients": ["bob@example.com", "@partner.example"],
        "max_per_hour": 5,
        "max_per_day": None,
        "undo_seconds": 10,
    }


def test_staff_see_a_malformed_allowed_recipient_beside_the_field(superuser_client: Client, owner: Any) -> None:
    response = superuser_client.post(
        "/admin/directory/outboundpolicy/add/",
        {"agent": owner.agent.pk, "approval": "never", "allowed_recipients": "not an address", "undo_seconds": "0"},
    )

    assert response.status_code == 200
    assert "neither an address" in response.content.decode()
    assert not OutboundPolicy.objects.exists()
