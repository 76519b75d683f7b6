"""Who is who: accounts, agents, API tokens, and what each agent knows about its senders."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q, Value

from directory.querysets import AgentQuerySet, ApiTokenQuerySet, SenderRuleQuerySet

# An email local part we can route without quoting: RFC 5321 dot-atom, lower case,
# no leading/trailing/double dots, at most 64 characters.
AGENT_ID_RE = r"^(?=.{1,64}$)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
validate_agent_id = RegexValidator(
    AGENT_ID_RE,
    "An agent id is an email local part: 1-64 lower-case letters, digits, dots (not first, last or doubled) and the other symbols RFC 5321 allows unquoted.",
    code="invalid_agent_id",
)

# RFC 5321 4.5.1: every domain accepts mail to postmaster (any case, with or without the
# domain). It reaches staff, never a tenant: the agent of that id is the system's own
# (``mail.addresses.postmaster_agent``), no operator may create one, and its mail is
# always held for moderation (``mail.trust.trust_evaluate``).
POSTMASTER = "postmaster"


class Account(models.Model):
    """The tenant that owns agents; operator tokens act for one account."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    class Policy(models.TextChoices):
        OPEN = "open", "Open: everyone reaches the inbox"
        CHALLENGE = "challenge", "Challenge unknown authenticated senders"
        VERIFIED_ONLY = "verified_only", "Hold mail from unverified senders"
        ALLOWLIST = "allowlist", "Hold mail from senders not on the allow list"

    class HoldFlag(models.TextChoices):
        """The Safety flags of mail.content an agent may hold mail for (``hold_on``)."""

        HIDDEN_TEXT = "hidden_text", "Hidden text"
        INSTRUCTIONS_TO_MODEL = "instructions_to_model", "Instructions to a model"
        LINK_TEXT_MISMATCH = "link_text_mismatch", "Link text that names another site"
        LOOKALIKE_SENDER = "lookalike_sender", "Look-alike sender domain"

    agent_id = models.CharField(max_length=64, unique=True, validators=[validate_agent_id])
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="agents")
    display_name = models.CharField(max_length=200, blank=True)
    policy = models.CharField(max_length=20, choices=Policy.choices, default=Policy.OPEN)
    # Safety flags (mail.content) that hold an inbound message for review instead of the
    # inbox: e.g. ["instructions_to_model", "hidden_text"]. Empty: flags only inform. The
    # database default lets code that predates the column (a rolling deploy, a historical
    # model in a data migration) still insert agents.
    hold_on = models.JSONField(default=list, db_default=Value([], output_field=models.JSONField()), blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["agent_id"]

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.agent_id}@{settings.MAIL_DOMAIN}"


class ApiToken(models.Model):
    """A bearer token, stored as a lookup prefix plus an HMAC of the whole token.

    The plaintext is returned once by ``token_create`` and never stored. An agent token
    is scoped to one agent; an operator token to one account.
    """

    class Kind(models.TextChoices):
        AGENT = "agent", "Agent"
        OPERATOR = "operator", "Operator"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="tokens")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="directory_apitoken_kind_scope",
                condition=(Q(kind="agent", agent__isnull=False) | Q(kind="operator", agent__isnull=True)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} token {self.prefix}…"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Sender(models.Model):
    """What one agent knows about one sender address: trust state and traffic."""

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        CHALLENGED = "challenged", "Challenge sent"
        VERIFIED = "verified", "Verified (challenge completed)"
        TRUSTED = "trusted", "Trusted"
        BLOCKED = "blocked", "Blocked"

    # Looked up through directory_sender_agent_address (agent first), not an index of its own.
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="senders", db_index=False)
    address = models.CharField(max_length=320)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNKNOWN)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    message_count = models.PositiveIntegerField(default=0)
    # The last challenge mail: claimed with a conditional update so at most one goes out per window.
    challenged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["agent", "address"], name="directory_sender_agent_address"),
        ]

    def __str__(self) -> str:
        return f"{self.address} → {self.agent.agent_id} ({self.status})"


class SenderRule(models.Model):
    """An allow or block entry by address or domain, for one agent, for every agent of an
    account, or (staff only) for every account.

    A rule belongs to an account: an agent rule to its agent's account, an account rule to
    the account itself. A rule with no account is global and only staff make it (the admin):
    an operator's reach ends at its account. The narrowest scope wins: agent before account
    before global, then address before domain.
    """

    class Action(models.TextChoices):
        ALLOW = "allow", "Allow"
        BLOCK = "block", "Block"

    account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sender_rules",
        help_text="empty: a global rule, for every account (staff only)",
    )
    agent = models.ForeignKey(
        Agent,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sender_rules",
        help_text="empty: the rule covers every agent of the account",
    )
    pattern = models.CharField(max_length=320, help_text="an address (a@b.com) or a domain (b.com)")
    action = models.CharField(max_length=5, choices=Action.choices)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SenderRuleQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="directory_senderrule_agent_has_account",
                condition=Q(agent__isnull=True) | Q(account__isnull=False),
            ),
            models.UniqueConstraint(fields=["agent", "pattern"], name="directory_senderrule_agent_pattern"),
            # Also what the trust lookup of an account's own rules walks (account, pattern IN ...).
            models.UniqueConstraint(
                fields=["account", "pattern"],
                condition=Q(agent__isnull=True),
                name="directory_senderrule_account_pattern",
            ),
            models.UniqueConstraint(
                fields=["pattern"], condition=Q(account__isnull=True), name="directory_senderrule_global_pattern"
            ),
        ]

    def __str__(self) -> str:
        # A null foreign key reads as None without a query.
        scope = self.agent.agent_id if self.agent else self.account.name if self.account else "global"
        return f"{self.action} {self.pattern} ({scope})"

    def clean(self) -> None:
        # The admin's form: an agent rule always belongs to its agent's account.
        if self.agent_id and self.agent is not None:
            if self.account_id and self.account_id != self.agent.account_id:
                raise ValidationError({"account": "An agent rule belongs to its agent's account."})
            self.account_id = self.agent.account_id

    @property
    def scope(self) -> str:
        """``agent``, ``account`` or ``global``: whom the rule covers."""
        return "agent" if self.agent_id else "account" if self.account_id else "global"

    @property
    def is_domain(self) -> bool:
        return "@" not in self.pattern


class Challenge(models.Model):
    """A one-time proof that a sender controls its address, for one agent.

    Only a SHA-256 of the token is stored: the plaintext lives in the challenge mail alone.
    """

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="challenges")
    address = models.CharField(max_length=320)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Staff screens and the sweep list an agent's challenges to one sender.
            models.Index(fields=["agent", "address"], name="directory_challenge_agent_addr"),
        ]

    def __str__(self) -> str:
        return f"challenge {self.address} → {self.agent.agent_id}"


class OutboundPolicy(models.Model):
    """How an agent's outbound mail is governed (docs/sending.md "Governed sending"): who
    must approve it, whom it may reach, how much of it per hour and day, and how long every
    send waits so it can be cancelled. An agent without a row has the default: no approval,
    any recipient, no quota, no undo window (``OutboundPolicy.for_agent``)."""

    class Approval(models.TextChoices):
        NEVER = "never", "Never: mail goes out at once"
        EXTERNAL = "external", "Mail to anyone outside this service's agents"
        ALWAYS = "always", "Every message"

    agent = models.OneToOneField(Agent, primary_key=True, on_delete=models.CASCADE, related_name="outbound_policy")
    approval = models.CharField(max_length=10, choices=Approval.choices, default=Approval.NEVER)
    # Addresses ("a@example.com") and domains ("@example.com"); empty: anyone.
    allowed_recipients = models.JSONField(default=list, blank=True)
    max_per_hour = models.PositiveIntegerField(null=True, blank=True, help_text="empty: no hourly quota")
    max_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="empty: no daily quota")
    undo_seconds = models.PositiveIntegerField(default=0, help_text="every send waits this long and can be cancelled")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "outbound policies"

    def __str__(self) -> str:
        return f"outbound policy of {self.agent_id}"

    @classmethod
    def for_agent(cls, agent: Agent) -> OutboundPolicy:
        """The agent's policy, or the default one (not saved) when it has none."""
        return cls.objects.filter(agent=agent).first() or cls(agent=agent)

    def as_dict(self) -> dict[str, object]:
        return {
            "approval": self.approval,
            "allowed_recipients": list(self.allowed_recipients),
            "max_per_hour": self.max_per_hour,
            "max_per_day": self.max_per_day,
            "undo_seconds": self.undo_seconds,
        }
