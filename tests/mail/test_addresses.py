"""Which agent an address belongs to (mail/addresses.py): every path asks the same
functions, so plus-tags, case, display names and the bare postmaster route alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.mail import get_connection, send_mail

from directory.models import POSTMASTER
from mail.addresses import (
    address_agent_id,
    address_is_agents,
    address_is_local,
    agent_for_address,
    agents_for_addresses,
)
from mail.models import Message
from tests.conftest import Persona

DOMAIN = "agents.localhost"


@pytest.mark.parametrize(
    ("address", "agent_id"),
    [
        (f"owner@{DOMAIN}", "owner"),
        (f"Owner+Invoices@{DOMAIN.upper()}", "owner"),
        (f"owner+a+b@{DOMAIN}", "owner"),
        (f"  owner@{DOMAIN}  ", "owner"),
        (f"Owner Name <owner+x@{DOMAIN}>", "owner"),
        ("Postmaster", POSTMASTER),
        (f"postmaster+x@{DOMAIN}", POSTMASTER),
        (f"+tag@{DOMAIN}", ""),
        ("owner@example.com", ""),
        (f"owner@sub.{DOMAIN}", ""),
        ("", ""),
    ],
)
def test_it_names_the_agent_an_address_routes_to(settings: Any, address: str, agent_id: str) -> None:
    settings.MAIL_DOMAIN = DOMAIN
    assert address_agent_id(address) == agent_id
    assert address_is_local(address) == (agent_id != "" or address.strip().startswith("+"))


@pytest.mark.django_db
def test_a_display_name_or_a_plus_tag_reaches_the_same_agent(owner: Persona) -> None:
    # The directory's old lookup split "Name <a@b>" on its last "@" and found no agent.
    assert (
        agent_for_address(f"Owner <{owner.agent.agent_id}+news@{owner.address.split('@')[1].upper()}>") == owner.agent
    )
    assert address_is_agents(owner.agent, f"{owner.agent.agent_id.upper()}+x@{owner.address.split('@')[1]}")


@pytest.mark.django_db
def test_a_batch_lookup_answers_per_address_and_finds_the_postmaster(owner: Persona) -> None:
    found = agents_for_addresses([owner.address, "Postmaster", "nobody@example.com"])
    assert found[owner.address] == owner.agent
    assert found["Postmaster"] is not None and found["Postmaster"].agent_id == POSTMASTER
    assert found["nobody@example.com"] is None


@pytest.mark.django_db
def test_the_local_backend_delivers_a_bare_postmaster_here_as_smtp_does(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # RFC 5321 4.1.1.3: "<Postmaster>" without a domain is this server's postmaster. The SMTP
    # listener accepted it; the local backend used to write it to the outbox as foreign mail.
    with django_capture_on_commit_callbacks(execute=True):
        send_mail(
            "Abuse report",
            "See attached",
            "ops@example.com",
            ["Postmaster"],
            connection=get_connection("mail.backends.LocalEmailBackend"),
        )

    assert Message.objects.filter(agent__agent_id=POSTMASTER, subject="Abuse report").exists()
    assert not list(Path(settings.OUTBOX_DIR).glob("*.envelope.json")) or all(
        "Postmaster" not in json.loads(p.read_text())["to"] for p in Path(settings.OUTBOX_DIR).glob("*.envelope.json")
    )
