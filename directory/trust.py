"""Trust decisions at ingest: is this message's sender verified for this agent, and does
the agent's policy (or an allow/block rule) put it in the inbox, hold it, or block it.

The trust issue extends this module (challenges, local DKIM/SPF); ingestion calls only
``trust_evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from directory.models import Agent, Sender, SenderRule


@dataclass(frozen=True)
class TrustDecision:
    sender_verified: bool
    disposition: str  # Message.Disposition value
    reason: str = ""


def authentication_aligned(authentication: dict[str, Any], sender: str) -> bool:
    """DKIM or SPF passed *for the From domain* (DMARC-style alignment), or the mail is
    internal. A pass for some other domain proves nothing about the From header."""
    if authentication.get("internal"):
        return True
    if authentication.get("aligned") is not None:
        return bool(authentication.get("aligned"))
    domain = sender.rpartition("@")[2].lower()
    if not domain:
        return False
    if authentication.get("dmarc") == "pass":
        return True
    dkim_domains = {d.lower() for d in authentication.get("dkim_domains", [])}
    if authentication.get("dkim") == "pass" and _aligned(domain, dkim_domains):
        return True
    spf_domain = str(authentication.get("spf_domain", "")).lower()
    return authentication.get("spf") == "pass" and bool(spf_domain) and _aligned(domain, {spf_domain})


def _aligned(from_domain: str, domains: set[str]) -> bool:
    # Relaxed alignment: same organisational domain, approximated by suffix match.
    return any(from_domain == d or from_domain.endswith("." + d) or d.endswith("." + from_domain) for d in domains)


def sender_rule_for(agent: Agent, sender: str) -> SenderRule | None:
    """The narrowest rule matching sender: agent before global, address before domain."""
    domain = sender.rpartition("@")[2]
    rules = {
        (r.agent_id is not None, "@" in r.pattern): r
        for r in SenderRule.objects.filter(agent__in=[agent], pattern__in=[sender, domain]).union(
            SenderRule.objects.filter(agent__isnull=True, pattern__in=[sender, domain])
        )
    }
    for key in [(True, True), (True, False), (False, True), (False, False)]:
        if key in rules:
            return rules[key]
    return None


def trust_evaluate(*, agent: Agent, sender: str, authentication: dict[str, Any]) -> TrustDecision:
    aligned = authentication_aligned(authentication, sender)
    rule = sender_rule_for(agent, sender) if sender else None
    record = Sender.objects.filter(agent=agent, address=sender).first() if sender else None
    if (rule and rule.action == SenderRule.Action.BLOCK) or (record and record.status == Sender.Status.BLOCKED):
        return TrustDecision(False, "blocked", "sender is blocked")
    known = bool(record and record.status in (Sender.Status.VERIFIED, Sender.Status.TRUSTED))
    verified = settings.SENDER_VERIFICATION_ENABLED and aligned and (known or bool(authentication.get("internal")))
    allowed = rule is not None and rule.action == SenderRule.Action.ALLOW
    if agent.policy == Agent.Policy.VERIFIED_ONLY and not verified:
        return TrustDecision(False, "held", "sender is not verified for this agent")
    if agent.policy == Agent.Policy.ALLOWLIST and not (allowed and aligned) and not verified:
        return TrustDecision(False, "held", "sender is not on the allow list")
    return TrustDecision(verified, "inbox")
