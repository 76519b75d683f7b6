from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from directory.models import Agent
from directory.services import token_authenticate

pytestmark = pytest.mark.django_db


def test_it_prints_the_address_and_a_working_token_as_json() -> None:
    out = StringIO()
    call_command("create_agent", "support", "--display-name", "Support bot", "--json", stdout=out)

    data = json.loads(out.getvalue())
    assert data["agent_id"] == "support"
    assert data["address"] == "support@agents.localhost"
    token = token_authenticate(data["token"])
    assert token is not None and token.agent.agent_id == "support"
    assert Agent.objects.get().display_name == "Support bot"


def test_it_stores_only_a_prefix_and_an_hmac_of_the_token() -> None:
    out = StringIO()
    call_command("create_agent", "support", "--json", stdout=out)
    plaintext = json.loads(out.getvalue())["token"]

    stored = Agent.objects.get().tokens.get()
    assert plaintext not in (stored.prefix, stored.digest)
    assert stored.prefix in plaintext


def test_it_rejects_an_agent_id_that_is_not_a_local_part() -> None:
    with pytest.raises(CommandError, match="local part"):
        call_command("create_agent", "bad id@x", stdout=StringIO())


def test_it_rejects_a_second_agent_with_the_same_id() -> None:
    call_command("create_agent", "support", stdout=StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_agent", "Support", stdout=StringIO())


def test_a_revoked_or_tampered_token_does_not_authenticate() -> None:
    out = StringIO()
    call_command("create_agent", "support", "--json", stdout=out)
    plaintext = json.loads(out.getvalue())["token"]

    assert token_authenticate(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    Agent.objects.get().tokens.update(revoked_at="2026-01-01T00:00:00Z")
    assert token_authenticate(plaintext) is None


def test_it_rejects_the_reserved_postmaster_id() -> None:
    with pytest.raises(CommandError, match="reserved"):
        call_command("create_agent", "postmaster", stdout=StringIO())
    assert not Agent.objects.exists()
