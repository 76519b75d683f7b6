"""Write paths of the directory: agents and API tokens. Used by API, admin and commands."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from directory.models import Account, Agent, ApiToken, validate_agent_id

DEFAULT_ACCOUNT_NAME = "default"
_TOKEN_PREFIX = {ApiToken.Kind.AGENT: "amk", ApiToken.Kind.OPERATOR: "amo"}


class AgentExists(Exception):
    pass


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
    """Create an agent and its first token. Raises ValidationError or AgentExists."""
    agent_id = agent_id.strip().lower()
    validate_agent_id(agent_id)
    if policy not in Agent.Policy.values:
        raise ValidationError(f"policy must be one of {', '.join(Agent.Policy.values)}", code="invalid_policy")
    account = account or account_default()
    try:
        with transaction.atomic():
            agent = Agent.objects.create(agent_id=agent_id, account=account, display_name=display_name, policy=policy)
            issued = token_create(kind=ApiToken.Kind.AGENT, account=account, agent=agent, label="initial")
    except IntegrityError:
        raise AgentExists(agent_id) from None
    return agent, issued


def agent_deactivate(*, agent: Agent) -> None:
    """Stop an agent receiving mail and using the API; its mail stays for staff."""
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(is_active=False)
        ApiToken.objects.live().filter(agent=agent).update(revoked_at=timezone.now())


def agent_for_address(address: str) -> Agent | None:
    """The active agent an envelope recipient routes to, or None (foreign domain, unknown)."""
    local, _, domain = address.strip().lower().rpartition("@")
    if not local or domain != settings.MAIL_DOMAIN:
        return None
    # Plus-addressing: agent+tag@domain reaches agent.
    local = local.split("+", 1)[0]
    return Agent.objects.active().filter(agent_id=local).first()


def sender_status_set(*, agent: Agent, address: str, status: str) -> None:
    """TEMPORARY on the admin branch: replaced by the trust branch's sender services."""
    from directory.models import Sender

    Sender.objects.update_or_create(agent=agent, address=address.lower(), defaults={"status": status})
