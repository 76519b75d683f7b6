"""Trust decisions: is this message's sender verified for this agent, and does the agent's
policy (or an allow/block rule) put it in the inbox, hold it, or block it.

Ingestion calls ``trust_evaluate`` (before the message exists) and ``senders_observe`` (once it
exists, in the same transaction). Everything else here is the sender challenge: one mail per
sender, agent and window, only to authenticated senders, so forged From addresses never get
backscatter; completing it (link or reply token) runs ``sender_verify``, which releases held mail.

SenderVerified is true only when all three hold:
1. ``SENDER_VERIFICATION_ENABLED`` is on;
2. the header From is authenticated: DKIM or SPF aligned with its domain (``mail.authn``),
   or the mail is agent-to-agent;
3. the sender is verified for this agent: challenge completed or trusted in the directory
   (agent-to-agent mail within one account counts as trusted: one operator owns both agents).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from assmbl import domain
from directory.models import POSTMASTER, Account, Agent, Challenge, Sender, SenderRule
from directory.services import SenderAction, sender_pattern_clean
from mail import authn
from mail.addresses import agent_for_address
from mail.message_content import HOLD_REASON_PREFIX, message_hold_reason
from mail.models import Message
from mail.release import message_release
from webhooks.services import event_record

log = logging.getLogger(__name__)

# A token is 32 URL-safe characters and may end in "-", so its end is "no further token
# character", not a word boundary (which a final "-" before "]" never has).
_REPLY_TOKEN = re.compile(r"\bchallenge[:\s]+([A-Za-z0-9_-]{32})(?![A-Za-z0-9_-])", re.I)
_NO_CHALLENGE_LOCALS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply")


@dataclass(frozen=True)
class TrustDecision:
    sender_verified: bool
    disposition: str  # Message.Disposition value
    reason: str = ""


class ChallengeRefused(Exception):
    """A challenge token that cannot be used. ``status`` is the HTTP status of the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def authentication_aligned(authentication: dict[str, Any], sender: str) -> bool:
    """DKIM or SPF passed *for the From domain* (DMARC-style alignment), or the mail is
    internal. A pass for some other domain proves nothing about the From header."""
    return authn.aligned_for(authentication, sender)


def _candidates(sender: str) -> list[str]:
    """The address, then its domain and each parent domain (not the bare TLD), narrowest first."""
    sender = sender.strip().lower()
    domain = authn.domain_of(sender)
    labels = domain.split(".")
    parents = [".".join(labels[i:]) for i in range(len(labels) - 1)] if domain else []
    return [sender, *parents] if "@" in sender else parents


# Narrowest scope first: the agent's own rule, then its account's, then staff's global one.
_SCOPE_RANK = {"agent": 0, "account": 1, "global": 2}


def _covers(rule: SenderRule, agent: Agent) -> bool:
    """Whether ``rule`` decides mail to ``agent``: never a rule of another agent or account."""
    if rule.agent_id is not None:
        return rule.agent_id == agent.pk
    return rule.account_id is None or rule.account_id == agent.account_id


def _narrowest(rules: Any, agent: Agent, candidates: list[str]) -> SenderRule | None:
    rank = {pattern: index for index, pattern in enumerate(candidates)}
    matching = [r for r in rules if r.pattern in rank and _covers(r, agent)]
    return min(matching, key=lambda r: (_SCOPE_RANK[r.scope], rank[r.pattern]), default=None)


class SenderFacts:
    """What the directory says about (agent, sender) pairs: the rules that match and the
    Sender rows. Loaded in two queries, for one message or for a whole ingest batch."""

    def __init__(self, pairs: list[tuple[Agent, str]]) -> None:
        pairs = [(agent, sender.strip().lower()) for agent, sender in pairs if sender.strip()]
        agents = {agent.pk: agent for agent, _ in pairs}.values()
        patterns = {pattern for _, sender in pairs for pattern in _candidates(sender)}
        self._rules = list(SenderRule.objects.applying_to(agents).filter(pattern__in=patterns)) if patterns else []
        self._records = {
            (record.agent_id, record.address): record for record in _senders_of((a.pk, s) for a, s in pairs)
        }

    def rule_for(self, agent: Agent, sender: str) -> SenderRule | None:
        return _narrowest(self._rules, agent, _candidates(sender))

    def record_for(self, agent: Agent, sender: str) -> Sender | None:
        return self._records.get((agent.pk, sender.strip().lower()))

    def blocks(self, agent: Agent, sender: str) -> bool:
        """A block rule is the narrowest match, or the sender is marked blocked."""
        rule, record = self.rule_for(agent, sender), self.record_for(agent, sender)
        return (rule is not None and rule.action == SenderRule.Action.BLOCK) or (
            record is not None and record.status == Sender.Status.BLOCKED
        )


def _senders_of(pairs: Iterable[tuple[int, str]]) -> list[Sender]:
    """The Sender rows of exactly these (agent id, address) pairs, in one query. Filtering
    on agents and addresses separately reads every agent's row for every address of a
    batch spread over many agents; one ``Q`` per agent costs more to compile than the
    query takes. A row-value ``IN (VALUES ...)`` is the same SQL on PostgreSQL and SQLite."""
    unique = sorted(set(pairs))
    if not unique:
        return []
    meta = Sender._meta
    quote = connection.ops.quote_name
    agent_column, address_column = quote(meta.get_field("agent").column), quote(meta.get_field("address").column)
    rows = ", ".join(["(%s, %s)"] * len(unique))
    sql = f"SELECT * FROM {quote(meta.db_table)} WHERE ({agent_column}, {address_column}) IN (VALUES {rows})"
    return list(Sender.objects.raw(sql, [value for pair in unique for value in pair]))


def agent_blocks_anyone(agent: Agent) -> bool:
    """Whether any sender can be blocked for ``agent``: a block rule of its own, its
    account's or a global one, or a sender marked blocked. When none exists, ``sender_blocked`` is "" for every
    sender (the SMTP listener caches that instead of asking per sender)."""
    return (
        SenderRule.objects.applying_to([agent]).filter(action=SenderRule.Action.BLOCK).exists()
        or Sender.objects.filter(agent=agent, status=Sender.Status.BLOCKED).exists()
    )


def sender_blocked(*, agent: Agent, sender: str) -> str:
    """The refusal reason when mail from ``sender`` to ``agent`` is blocked, else "".
    Safe to put in an SMTP reply: printable ASCII only, bounded."""
    sender = sender.strip().lower()
    if not sender:
        return ""
    if not SenderFacts([(agent, sender)]).blocks(agent, sender):
        return ""
    shown = re.sub(r"[^\x21-\x7e]", "", sender)[:100]
    return f"<{shown}> is blocked by this recipient"


def _internal_same_account(agent: Agent, sender: str) -> bool:
    other = agent_for_address(sender)
    return other is not None and other.account_id == agent.account_id


def trust_evaluate(
    *, agent: Agent, sender: str, authentication: dict[str, Any], facts: SenderFacts | None = None
) -> TrustDecision:
    """``facts``: preloaded by a batch (ingestion); loaded here for one message otherwise."""
    sender = sender.strip().lower()
    aligned = bool(sender) and authentication_aligned(authentication, sender)
    if sender and facts is None:
        facts = SenderFacts([(agent, sender)])
    rule = facts.rule_for(agent, sender) if facts and sender else None
    record = facts.record_for(agent, sender) if facts and sender else None
    if facts and sender and facts.blocks(agent, sender):
        return TrustDecision(False, "blocked", "sender is blocked")
    if agent.agent_id == POSTMASTER:
        return TrustDecision(False, "held", "mail to postmaster is for staff")
    known = bool(record and record.status in (Sender.Status.VERIFIED, Sender.Status.TRUSTED))
    if not known and authentication.get("internal"):
        known = _internal_same_account(agent, sender)
    verified = bool(settings.SENDER_VERIFICATION_ENABLED and aligned and known)
    # An allow rule admits mail only when the From is authenticated: a rule keyed on a
    # forgeable header would let anyone in by writing the right From.
    allowed = rule is not None and rule.action == SenderRule.Action.ALLOW and aligned
    if agent.policy == Agent.Policy.VERIFIED_ONLY and not verified:
        return TrustDecision(False, "held", "sender is not verified for this agent")
    if agent.policy == Agent.Policy.ALLOWLIST and not (allowed or verified):
        return TrustDecision(False, "held", "sender is not on the allow list")
    return TrustDecision(verified, "inbox")


# --- ingest hook ---------------------------------------------------------------------------


def senders_observe(*, messages: list[Message]) -> None:
    """Called by ingestion for a batch of newly indexed inbound messages (which already carry
    the verdicts normalised for their sender), inside their transaction, before their
    events: count each sender, complete a challenge answered by reply, or send a challenge
    (on commit)."""
    observed = [m for m in messages if m.sender]
    if not observed:
        return
    senders = _senders_count(Counter((m.agent_id, m.sender) for m in observed))
    for message in observed:
        if not message.authentication.get("aligned") or message.disposition == Message.Disposition.BLOCKED:
            continue
        agent, sender = message.agent, senders[(message.agent_id, message.sender)]
        reply_token = _REPLY_TOKEN.search(f"{message.subject}\n{message.body_preview}")
        if reply_token and sender.status not in (Sender.Status.VERIFIED, Sender.Status.TRUSTED):
            try:
                challenge_complete(token=reply_token.group(1), agent=agent, address=message.sender)
                sender.status = Sender.Status.VERIFIED
                continue
            except ChallengeRefused:
                pass
        auto = message.auto_submitted.strip().lower()
        if agent.policy == Agent.Policy.CHALLENGE and (not auto or auto == "no"):
            challenge_request(agent=agent, address=message.sender, authentication=message.authentication)


_SENDER_COLUMNS = ("agent", "address", "status", "last_seen_at", "message_count", "created_at")
# Rows an upsert: 6,000 parameters, under SQLite's 32,766 (a batch rarely has 1,000 senders).
_SENDERS_PER_UPSERT = 1000


def _senders_count(counts: Counter[tuple[int, str]]) -> dict[tuple[int, str], Sender]:
    """Add each (agent id, address)'s count to its Sender row, made if missing, in one upsert
    that returns the rows as they are now. Two workers whose batches share senders lock the
    same rows: both take them in sorted key order (an INSERT takes its rows in VALUES order,
    for a new row as for a conflict), or PostgreSQL aborts one of them with a deadlock."""
    keys = sorted(counts)
    meta, quote = Sender._meta, connection.ops.quote_name
    table = quote(meta.db_table)
    column = {f.name: quote(f.column) for f in meta.concrete_fields}
    columns = [column[name] for name in _SENDER_COLUMNS]
    agent, address, _, last_seen, count, _ = columns
    now = timezone.now()
    rows: dict[tuple[int, str], Sender] = {}
    for start in range(0, len(keys), _SENDERS_PER_UPSERT):
        chunk = keys[start : start + _SENDERS_PER_UPSERT]
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s)'] * len(chunk))} "
            f"ON CONFLICT ({agent}, {address}) DO UPDATE SET {last_seen} = EXCLUDED.{last_seen}, "
            f"{count} = {table}.{count} + EXCLUDED.{count} RETURNING *"
        )
        params = [v for a, s in chunk for v in (a, s, Sender.Status.UNKNOWN.value, now, counts[(a, s)], now)]
        rows.update({(row.agent_id, row.address): row for row in Sender.objects.raw(sql, params)})
    return rows


# --- challenge -----------------------------------------------------------------------------


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def challenge_url(plaintext: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/challenge/{plaintext}"


def challenge_request(*, agent: Agent, address: str, authentication: dict[str, Any]) -> Challenge | None:
    """Send one challenge to an authenticated, unverified sender, at most one per
    ``CHALLENGE_WINDOW_SECONDS`` for this sender and agent. Returns the challenge, or None
    when none was sent (unauthenticated, already verified, blocked, or within the window)."""
    address = address.strip().lower()
    local = address.partition("@")[0]
    if not authn.aligned_for(authentication, address) or authentication.get("internal"):
        return None  # never backscatter to an address that did not prove it sent this
    if not local or local in _NO_CHALLENGE_LOCALS:
        return None
    now = timezone.now()
    window_start = now - timedelta(seconds=settings.CHALLENGE_WINDOW_SECONDS)
    # Fast path for a flood from one sender: the cache remembers this window's claim, so the
    # 10,000th message costs a cache lookup. The database claim below stays the authority
    # (a cache flush costs at most one indexed read per message, never a second mail).
    gate = f"challenge-gate:{agent.pk}:{agent.created_at.timestamp()}:{hashlib.sha256(address.encode()).hexdigest()}"
    if cache.get(gate):
        return None
    known = Sender.objects.filter(agent=agent, address=address).values_list("status", "challenged_at").first()
    if known is not None and (
        known[0] not in (Sender.Status.UNKNOWN, Sender.Status.CHALLENGED) or (known[1] and known[1] >= window_start)
    ):
        cache.set(gate, 1, timeout=max(1, int((known[1] - window_start).total_seconds())) if known[1] else 60)
        return None
    if sender_blocked(agent=agent, sender=address):
        return None
    with transaction.atomic():
        sender, _ = Sender.objects.get_or_create(agent=agent, address=address)
        # The claim: one conditional update, so concurrent workers send at most one mail.
        claimed = (
            Sender.objects.filter(pk=sender.pk, status__in=[Sender.Status.UNKNOWN, Sender.Status.CHALLENGED])
            .filter(Q(challenged_at__isnull=True) | Q(challenged_at__lt=window_start))
            .update(challenged_at=now, status=Sender.Status.CHALLENGED)
        )
        if not claimed:
            return None
        transaction.on_commit(lambda: cache.set(gate, 1, timeout=settings.CHALLENGE_WINDOW_SECONDS))
        plaintext = secrets.token_urlsafe(24)
        challenge = Challenge.objects.create(
            agent=agent,
            address=address,
            token_hash=token_hash(plaintext),
            expires_at=now + timedelta(seconds=settings.CHALLENGE_TTL_SECONDS),
        )
        transaction.on_commit(lambda: _challenge_mail_send(challenge, plaintext))
    return challenge


def _challenge_mail_send(challenge: Challenge, plaintext: str) -> None:
    agent = challenge.agent
    context = {"agent": agent, "url": challenge_url(plaintext), "token": plaintext, "expires_at": challenge.expires_at}
    mail = EmailMessage(
        subject=f"Confirm your address to reach {agent.address} [challenge:{plaintext}]",
        body=render_to_string("directory/challenge_email.txt", context),
        from_email=agent.address,
        to=[challenge.address],
        # RFC 3834: an automatic reply; well-behaved responders will not answer it.
        headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
    )
    try:
        mail.send()
    except Exception:
        # The sender can still be trusted by the operator; a failed challenge is not lost mail.
        log.exception("could not send the challenge to %s for %s", challenge.address, agent.agent_id)


def challenge_lookup(*, token: str, agent: Agent | None = None, address: str | None = None) -> Challenge:
    """The usable challenge for a token, or ChallengeRefused (404 unknown or another agent's,
    410 used or expired)."""
    challenge = Challenge.objects.select_related("agent").filter(token_hash=token_hash(token)).first()
    if challenge is None or (agent is not None and challenge.agent_id != agent.pk):
        raise ChallengeRefused(404, "This confirmation link is not valid. Check that you copied the whole link.")
    if address is not None and challenge.address != address.strip().lower():
        raise ChallengeRefused(404, "This confirmation link is not valid. Check that you copied the whole link.")
    if challenge.used_at is not None:
        raise ChallengeRefused(410, "This confirmation link was already used. Your address is already confirmed.")
    if challenge.expires_at <= timezone.now():
        raise ChallengeRefused(410, "This confirmation link has expired. Write to the agent again for a new one.")
    return challenge


def challenge_complete(*, token: str, agent: Agent | None = None, address: str | None = None) -> Sender:
    """Use a challenge token once: verify its sender for its agent and release held mail."""
    with transaction.atomic():
        challenge = challenge_lookup(token=token, agent=agent, address=address)
        # Single use even under concurrent confirmations: claim with a conditional update.
        if not Challenge.objects.filter(pk=challenge.pk, used_at__isnull=True).update(used_at=timezone.now()):
            raise ChallengeRefused(410, "This confirmation link was already used. Your address is already confirmed.")
        return sender_verify(agent=challenge.agent, address=challenge.address, via="challenge")


def sender_entry_create(
    *, agent: Agent | None, account: Account | None = None, address_or_domain: str, action: str, note: str = ""
) -> Sender | SenderRule:
    """Trust an address for an agent (a Sender row), or allow/block an address or domain
    (a SenderRule) for one ``agent``, for every agent of an ``account`` (``agent=None``), or,
    with neither, for every account: a global rule, which only staff make (the admin; the
    API never passes neither). Emits sender.verified, or sender.blocked for an agent's block.
    Idempotent: the same entry twice is updated, not duplicated."""
    pattern = sender_pattern_clean(address_or_domain)
    if action not in SenderAction.ALL:
        raise domain.Invalid(f"action must be one of {', '.join(SenderAction.ALL)}", code="invalid_action")
    if agent is not None:
        if account is not None and account.pk != agent.account_id:
            raise domain.Invalid("the agent belongs to another account", code="invalid_scope")
        account = agent.account
    with transaction.atomic():
        if action == SenderAction.TRUST:
            if agent is None:
                raise domain.Invalid(
                    "trust is per agent: give agent_id, or use allow for a whole account", code="invalid_scope"
                )
            if "@" not in pattern:
                raise domain.Invalid("trust takes an address; use allow for a whole domain", code="invalid_pattern")
            SenderRule.objects.filter(agent=agent, pattern=pattern, action=SenderRule.Action.BLOCK).delete()
            return sender_verify(agent=agent, address=pattern, via="directory")
        rule, _ = SenderRule.objects.update_or_create(
            agent=agent, account=account, pattern=pattern, defaults={"action": action, "note": note}
        )
        if action == SenderAction.BLOCK and agent is not None:
            payload = {"AgentID": agent.agent_id, "AddressOrDomain": pattern, "Scope": "agent"}
            event_record(agent=agent, type="sender.blocked", payload=payload)
        return rule


def sender_verify(*, agent: Agent, address: str, via: str = "challenge") -> Sender:
    """Mark a sender verified (``via="challenge"``) or trusted (``via="directory"``) for an
    agent, emit ``sender.verified`` and release its held mail into the inbox."""
    address = address.strip().lower()
    status = Sender.Status.TRUSTED if via == "directory" else Sender.Status.VERIFIED
    now = timezone.now()
    with transaction.atomic():
        sender, _ = Sender.objects.get_or_create(agent=agent, address=address)
        Sender.objects.filter(pk=sender.pk).update(status=status, verified_at=now)
        sender.refresh_from_db()
        event_record(
            agent=agent,
            type="sender.verified",
            payload={"AgentID": agent.agent_id, "Address": address, "Status": status, "Via": via},
        )
        held_release(agent=agent, address=address)
    return sender


def held_release(*, agent: Agent, address: str) -> int:
    """Recompute held messages of one sender; those that now pass go to the inbox with the
    same event a freshly received message makes. Returns how many were released."""
    released = 0
    held = Message.objects.for_agent(agent).inbound().filter(disposition=Message.Disposition.HELD, sender=address)
    for message in held.select_related("agent").select_for_update():
        decision = trust_evaluate(agent=agent, sender=message.sender, authentication=message.authentication)
        if decision.disposition != Message.Disposition.INBOX or message.quarantine_reason.startswith(
            HOLD_REASON_PREFIX
        ):
            continue
        if reason := message_hold_reason(message=message):
            # Its sender is now trusted, but its content is what the agent holds mail for.
            Message.objects.filter(pk=message.pk).update(quarantine_reason=reason)
            continue
        released += message_release(message=message, sender_verified=decision.sender_verified)
    return released
