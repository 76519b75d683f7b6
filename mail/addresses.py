"""Which agent an address belongs to: the one home of address parsing, plus-addressing,
``MAIL_DOMAIN`` and the postmaster mailbox.

The SMTP listener (RCPT TO), ingestion (envelope recipients), trust (is the sender an agent of
the same account), sending (reply-all leaves the agent's own addresses out) and the local mail
backend (deliver here or write to the outbox) all ask these functions, so a mail addressed to
``agent+tag@domain`` lands in the same mailbox whichever path it took.
"""

from __future__ import annotations

import re
from email.utils import parseaddr

from django.conf import settings

from directory.models import POSTMASTER, Agent
from directory.services import agent_system_get, agents_active_by_id

# An envelope address as SMTP gives it (no display name, comment or quoting) needs no
# parsing: the listener and ingestion ask for every recipient, and parseaddr costs ~100x more.
_NEEDS_PARSING = re.compile(r'[\s<>()",;:\\\[\]]')


def address_bare(address: str) -> str:
    """``Name <Agent+Tag@Domain>`` → ``agent+tag@domain`` ("" when it is not one address)."""
    address = address.strip()
    if not _NEEDS_PARSING.search(address):
        return address.lower()
    return parseaddr(address)[1].strip().lower()


def address_agent_id(address: str) -> str:
    """The agent id an address routes to ("" for another domain): plus-addressing
    ``agent+tag@domain`` reaches ``agent``; a bare ``postmaster`` is ours (RFC 5321 4.1.1.3:
    "<Postmaster>" without a domain)."""
    bare = address_bare(address)
    if bare == POSTMASTER:
        return POSTMASTER
    local, _, domain = bare.rpartition("@")
    if domain != settings.MAIL_DOMAIN:
        return ""
    return local.split("+", 1)[0]


def address_is_local(address: str) -> bool:
    """Is the address one of this service's (whether or not an agent has it)?"""
    bare = address_bare(address)
    return bare == POSTMASTER or bare.rpartition("@")[2] == settings.MAIL_DOMAIN


def address_is_agents(agent: Agent, address: str) -> bool:
    """Does the address (any plus-tag, any case) reach this agent?"""
    return address_agent_id(address) == agent.agent_id


def postmaster_agent() -> Agent:
    """The system's postmaster mailbox, created on first use. Found by its id alone, active
    or not: a postmaster address is always accepted."""
    return agent_system_get(agent_id=POSTMASTER, display_name="Postmaster (RFC 5321)")


def agent_for_address(address: str) -> Agent | None:
    """The active agent an envelope recipient routes to, or None (foreign domain, unknown)."""
    return agents_for_addresses([address])[address]


def agents_for_addresses(addresses: list[str]) -> dict[str, Agent | None]:
    """``agent_for_address`` for many recipients in one query (a batch of deliveries)."""
    ids = {address: address_agent_id(address) for address in addresses}
    wanted = {agent_id for agent_id in ids.values() if agent_id}
    found = agents_active_by_id(agent_ids=wanted)
    if POSTMASTER in wanted:
        found[POSTMASTER] = postmaster_agent()
    return {address: found.get(agent_id) if agent_id else None for address, agent_id in ids.items()}
