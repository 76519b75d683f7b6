"""Write paths of the directory: agents and API tokens. Used by API, admin and commands."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from assmbl import domain
from directory.models import (
    POSTMASTER,
    Account,
    Agent,
    ApiToken,
    OutboundPolicy,
    Sender,
    SenderRule,
    validate_agent_id,
)

DEFAULT_ACCOUNT_NAME = "default"
# Owns the system's own agents (``agent_system_get``); no operator token belongs to it.
SYSTEM_ACCOUNT_NAME = "assmbl:system"
RESERVED_AGENT_IDS = frozenset({POSTMASTER})
_TOKEN_PREFIX = {ApiToken.Kind.AGENT: "amk", ApiToken.Kind.OPERATOR: "amo"}


class AgentExists(domain.Conflict):
    code = "agent_exists"
    default_message = "An agent with this id already exists."


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str


def token_digest(plaintext: str) -> str:
    return hmac.new(settings.TOKEN_PEPPER.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def account_default() -> Account:
    account, _ = Account.objects.get_or_create(name=DEFAULT_ACCOUNT_NAME)
    return account


def token_create(*, kind: str, account: Account, agent: Agent | None = None, label: str = "") -> IssuedToken:
    """Mint a token. Format ``amk_<prefix>_<secret>``; only the prefix and an HMAC are stored."""
    prefix = secrets.token_hex(6)
    plaintext = f"{_TOKEN_PREFIX[ApiToken.Kind(kind)]}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        kind=kind, account=account, agent=agent, prefix=prefix, digest=token_digest(plaintext), label=label
    )
    return IssuedToken(token=token, plaintext=plaintext)


def token_authenticate(plaintext: str) -> ApiToken | None:
    """The live token this plaintext belongs to, or None. Constant-time on the secret part."""
    parts = plaintext.split("_")
    if len(parts) < 3 or parts[0] not in _TOKEN_PREFIX.values() or len(parts[1]) != 12:
        return None
    token = ApiToken.objects.select_related("agent", "account").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.digest, token_digest(plaintext)):
        return None
    if token.revoked_at is not None or (token.agent is not None and not token.agent.is_active):
        return None
    now = timezone.now()
    # Touch last_used_at at most once a minute: a write per request would serialise reads.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


@transaction.atomic
def agent_token_rotate(*, agent: Agent, label: str = "") -> IssuedToken:
    """Revoke every live token of the agent and issue a new one."""
    ApiToken.objects.live().filter(agent=agent).update(revoked_at=timezone.now())
    return token_create(kind=ApiToken.Kind.AGENT, account=agent.account, agent=agent, label=label)


def agent_create(
    *, agent_id: str, account: Account | None = None, display_name: str = "", policy: str = Agent.Policy.OPEN
) -> tuple[Agent, IssuedToken]:
    """Create an agent and its first token. Raises ``domain.Invalid`` or AgentExists."""
    agent_id = agent_id_clean(agent_id)
    if policy not in Agent.Policy.values:
        raise domain.Invalid(f"policy must be one of {', '.join(Agent.Policy.values)}", code="invalid_policy")
    account = account or account_default()
    try:
        with transaction.atomic():
            agent = Agent.objects.create(agent_id=agent_id, account=account, display_name=display_name, policy=policy)
            issued = token_create(kind=ApiToken.Kind.AGENT, account=account, agent=agent, label="initial")
    except IntegrityError:
        raise AgentExists() from None
    return agent, issued


def agent_id_clean(agent_id: str) -> str:
    """The agent id an operator or staff asked for, lower-cased; ``domain.Invalid`` when it is
    not a routable local part or is reserved for the system."""
    agent_id = agent_id.strip().lower()
    try:
        validate_agent_id(agent_id)
    except ValidationError as exc:  # the model field's validator speaks Django's forms
        raise domain.Invalid(exc.messages[0], code="invalid_agent_id") from None
    if agent_id in RESERVED_AGENT_IDS:
        raise domain.Invalid(
            f"{agent_id} is reserved: its mail goes to the staff's moderation queue.", code="invalid_agent_id"
        )
    return agent_id


def agent_system_get(*, agent_id: str, display_name: str) -> Agent:
    """A system agent (owned by the system account), created on first use. Found by its id
    alone, active or not."""
    agent = Agent.objects.filter(agent_id=agent_id).first()
    if agent is not None:
        return agent
    account, _ = Account.objects.get_or_create(name=SYSTEM_ACCOUNT_NAME)
    try:
        with transaction.atomic():
            return Agent.objects.create(agent_id=agent_id, account=account, display_name=display_name)
    except IntegrityError:  # created meanwhile by another session
        return Agent.objects.get(agent_id=agent_id)


def agent_deactivate(*, agent: Agent) -> None:
    """Stop an agent receiving mail and using the API; its mail stays for staff."""
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(is_active=False)
        ApiToken.objects.live().filter(agent=agent).update(revoked_at=timezone.now())


def agents_active_by_id(*, agent_ids: set[str]) -> dict[str, Agent]:
    """The active agents among these ids, in one query (``mail.addresses`` maps addresses to ids)."""
    if not agent_ids:
        return {}
    return {agent.agent_id: agent for agent in Agent.objects.active().filter(agent_id__in=agent_ids)}


# --- trust: policy and directory entries -------------------------------------------------


def agent_policy_set(*, agent: Agent, policy: str) -> Agent:
    """Change who reaches an agent's inbox. Raises ``domain.Invalid`` (code invalid_policy).

    For ``PATCH /v1/agents/{agent_id}`` (the inbox API) and the admin: one rule, one place.
    """
    policy = str(policy).strip().lower()
    if policy not in Agent.Policy.values:
        raise domain.Invalid(f"policy must be one of {', '.join(Agent.Policy.values)}", code="invalid_policy")
    Agent.objects.filter(pk=agent.pk).update(policy=policy)
    agent.policy = policy
    return agent


class SenderAction:
    TRUST = "trust"
    ALLOW = "allow"
    BLOCK = "block"
    ALL = (TRUST, ALLOW, BLOCK)


def sender_pattern_clean(value: str) -> str:
    """An address (a@b.com) or a domain (b.com), lower-cased; ``domain.Invalid`` otherwise."""
    pattern = str(value or "").strip().lower().strip(".")
    local, at, host = pattern.rpartition("@")
    host = host if at else pattern
    labels = host.split(".")
    if (
        not host
        or len(pattern) > 320
        or len(labels) < 2
        or any(not label or len(label) > 63 or not all(c.isalnum() or c == "-" for c in label) for label in labels)
        or (at and (not local or any(c.isspace() for c in local)))
    ):
        raise domain.Invalid(
            "address_or_domain must be an address (a@example.com) or a domain (example.com)", code="invalid_pattern"
        )
    return pattern


def sender_entry_delete(*, entry: Sender | SenderRule) -> None:
    """Forget a directory entry: a trusted/verified sender becomes unknown again."""
    entry.delete()


def agent_hold_on_set(*, agent: Agent, hold_on: list[str]) -> Agent:
    """Which Safety flags hold an agent's inbound mail for review (the moderation queue)
    instead of its inbox. Raises ``domain.Invalid`` (code invalid_hold_on)."""
    values = [str(value).strip().lower() for value in hold_on]
    if unknown := [value for value in values if value not in Agent.HoldFlag.values]:
        raise domain.Invalid(
            f"hold_on: {unknown[0]!r} is not one of {', '.join(Agent.HoldFlag.values)}", code="invalid_hold_on"
        )
    flags = [flag for flag in Agent.HoldFlag.values if flag in values]
    Agent.objects.filter(pk=agent.pk).update(hold_on=flags)
    agent.hold_on = flags
    return agent


def agent_update(
    *,
    agent: Agent,
    display_name: str | None = None,
    policy: str | None = None,
    hold_on: list[str] | None = None,
    outbound: dict[str, Any] | None = None,
) -> Agent:
    """Change what an operator may change about an agent; the id and account never change."""
    with transaction.atomic():
        if policy is not None:
            agent_policy_set(agent=agent, policy=policy)
        if hold_on is not None:
            agent_hold_on_set(agent=agent, hold_on=hold_on)
        if outbound is not None:
            agent_outbound_set(agent=agent, **outbound)
        if display_name is not None:
            Agent.objects.filter(pk=agent.pk).update(display_name=display_name)
        return Agent.objects.get(pk=agent.pk)


# --- outbound policy ---------------------------------------------------------------------

MAX_ALLOWED_RECIPIENTS = 1000
MAX_UNDO_SECONDS = 3600


def allowed_recipient_clean(value: str) -> str:
    """An address (``a@example.com``) or a whole domain (``@example.com``), lower-cased."""
    entry = str(value or "").strip().lower()
    try:
        if entry.startswith("@"):
            host = sender_pattern_clean(entry[1:])
            if "@" in host:
                raise domain.Invalid("")
            return f"@{host}"
        if "@" not in entry:
            raise domain.Invalid("")
        return sender_pattern_clean(entry)
    except domain.Invalid:
        raise domain.Invalid(
            f"allowed_recipients: {value!r} is neither an address (a@example.com) nor a domain (@example.com).",
            code="invalid_field",
            details={"field": "outbound.allowed_recipients", "value": value},
        ) from None


def _quota_clean(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise domain.Invalid(
            f"{name} must be a positive integer or null.", code="invalid_field", details={"field": f"outbound.{name}"}
        )
    return int(value)


def agent_outbound_set(
    *,
    agent: Agent,
    approval: str | None = None,
    allowed_recipients: list[str] | None = None,
    max_per_hour: Any = ...,
    max_per_day: Any = ...,
    undo_seconds: int | None = None,
) -> OutboundPolicy:
    """Change how the agent's outbound mail is governed (``PATCH /v1/agents/{id}`` and the
    admin); a field left out keeps its value, a quota set to None is lifted."""
    with transaction.atomic():
        policy = OutboundPolicy.objects.select_for_update().filter(agent=agent).first() or OutboundPolicy(agent=agent)
        if approval is not None:
            if approval not in OutboundPolicy.Approval.values:
                raise domain.Invalid(
                    f"approval must be one of {', '.join(OutboundPolicy.Approval.values)}.",
                    code="invalid_field",
                    details={"field": "outbound.approval"},
                )
            policy.approval = approval
        if allowed_recipients is not None:
            if len(allowed_recipients) > MAX_ALLOWED_RECIPIENTS:
                raise domain.Invalid(
                    f"At most {MAX_ALLOWED_RECIPIENTS} allowed_recipients.",
                    code="invalid_field",
                    details={"field": "outbound.allowed_recipients"},
                )
            policy.allowed_recipients = list(dict.fromkeys(allowed_recipient_clean(v) for v in allowed_recipients))
        if max_per_hour is not ...:
            policy.max_per_hour = _quota_clean("max_per_hour", max_per_hour)
        if max_per_day is not ...:
            policy.max_per_day = _quota_clean("max_per_day", max_per_day)
        if undo_seconds is not None:
            if isinstance(undo_seconds, bool) or not 0 <= undo_seconds <= MAX_UNDO_SECONDS:
                raise domain.Invalid(
                    f"undo_seconds must be 0 to {MAX_UNDO_SECONDS}.",
                    code="invalid_field",
                    details={"field": "outbound.undo_seconds"},
                )
            policy.undo_seconds = undo_seconds
        policy.save()
    return policy
