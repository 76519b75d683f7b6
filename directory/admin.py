from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from assmbl.admin import RecordAdmin
from assmbl.domain import DomainError
from directory.models import Account, Agent, ApiToken, Challenge, OutboundPolicy
from directory.services import (
    MAX_UNDO_SECONDS,
    agent_create,
    agent_deactivate,
    agent_hold_on_set,
    agent_id_clean,
    agent_outbound_set,
    agent_token_rotate,
    agent_update,
    allowed_recipient_clean,
    token_revoke,
)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


class AgentForm(forms.ModelForm):
    hold_on = forms.MultipleChoiceField(
        choices=Agent.HoldFlag.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Inbound mail with any of these Safety flags is held in the moderation queue.",
    )

    class Meta:
        model = Agent
        fields = ["agent_id", "account", "display_name", "policy", "hold_on"]

    def clean_agent_id(self) -> str:
        try:
            return agent_id_clean(self.cleaned_data["agent_id"])
        except DomainError as exc:  # a form shows Django's ValidationError beside the field
            raise forms.ValidationError(exc.message, code=exc.code) from None


class OutboundPolicyForm(forms.ModelForm):
    """The outbound policy as staff edit it; saved through ``agent_outbound_set``."""

    allowed_recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="one per line: an address (a@example.com) or a domain (@example.com); empty: anyone",
    )
    max_per_hour = forms.IntegerField(required=False, min_value=1, help_text="empty: no hourly quota")
    max_per_day = forms.IntegerField(required=False, min_value=1, help_text="empty: no daily quota")
    undo_seconds = forms.IntegerField(min_value=0, max_value=MAX_UNDO_SECONDS, initial=0)

    class Meta:
        model = OutboundPolicy
        fields = ["approval", "allowed_recipients", "max_per_hour", "max_per_day", "undo_seconds"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_recipients"] = "\n".join(self.instance.allowed_recipients)

    def clean_allowed_recipients(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["allowed_recipients"].splitlines() if line.strip()]
        try:
            return [allowed_recipient_clean(line) for line in lines]
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


@admin.register(OutboundPolicy)
class OutboundPolicyAdmin(admin.ModelAdmin):
    """How an agent's outbound mail is governed; an agent without one sends freely."""

    form = OutboundPolicyForm
    list_display = ["agent", "approval", "max_per_hour", "max_per_day", "undo_seconds", "updated_at"]
    list_filter = ["approval"]
    search_fields = ["agent__agent_id"]
    list_select_related = ["agent"]
    autocomplete_fields = ["agent"]
    fields = ["agent", "approval", "allowed_recipients", "max_per_hour", "max_per_day", "undo_seconds"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["agent"] if obj else []

    def save_model(self, request: HttpRequest, obj: OutboundPolicy, form: Any, change: bool) -> None:
        data = form.cleaned_data
        saved = agent_outbound_set(
            agent=obj.agent,
            **{name: data.get(name) for name in ("approval", "allowed_recipients", "max_per_hour", "max_per_day")},
            undo_seconds=data.get("undo_seconds") or 0,
        )
        obj.pk = saved.pk


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Agents: created through ``agent_create`` (the token is shown once, in the message
    bar), changed through ``agent_update``, tokens rotated through ``agent_token_rotate``."""

    form = AgentForm
    list_display = [
        "agent_id",
        "display_name",
        "account",
        "policy",
        "is_active",
        "unread",
        "quarantined",
        "held",
        "mail",
        "created_at",
    ]
    list_filter = ["policy", "is_active", "account"]
    search_fields = ["agent_id", "display_name"]
    list_select_related = ["account"]
    actions = ["rotate_token", "deactivate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Agent | None = None) -> list[str]:
        return ["agent_id", "account", "is_active"] if obj else []

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        inbox = Q(messages__direction="inbound", messages__disposition="inbox", messages__archived=False)
        agents: QuerySet[Agent] = super().get_queryset(request)
        return agents.annotate(
            unread_count=Count("messages", filter=inbox & Q(messages__is_read=False)),
            quarantined_count=Count("messages", filter=Q(messages__disposition="quarantined")),
            held_count=Count("messages", filter=Q(messages__disposition="held")),
        )

    @admin.display(description="unread", ordering="unread_count")
    def unread(self, agent: Agent) -> int:
        count: int = agent.unread_count  # type: ignore[attr-defined]  # get_queryset's annotation
        return count

    @admin.display(description="quarantined", ordering="quarantined_count")
    def quarantined(self, agent: Agent) -> int:
        count: int = agent.quarantined_count  # type: ignore[attr-defined]  # get_queryset's annotation
        return count

    @admin.display(description="held", ordering="held_count")
    def held(self, agent: Agent) -> int:
        count: int = agent.held_count  # type: ignore[attr-defined]  # get_queryset's annotation
        return count

    @admin.display(description="mail")
    def mail(self, agent: Agent) -> str:
        url = reverse("admin:mail_message_changelist") + f"?agent__id__exact={agent.pk}"
        queue = reverse("admin:mail_moderationitem_changelist") + f"?agent__id__exact={agent.pk}"
        return format_html('<a href="{}">messages</a> · <a href="{}">queue</a>', url, queue)

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        if change:
            agent_update(agent=obj, display_name=obj.display_name, policy=obj.policy, hold_on=obj.hold_on)
            return
        agent, issued = agent_create(
            agent_id=obj.agent_id, account=obj.account, display_name=obj.display_name, policy=obj.policy
        )
        agent_hold_on_set(agent=agent, hold_on=obj.hold_on or [])
        obj.pk = agent.pk
        self.message_user(
            request,
            f"Created {agent.address}. Its API token, shown this once: {issued.plaintext}",
            messages.WARNING,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Agents are deactivated (mail kept for staff), never deleted from the console.
        return False

    @admin.action(description="Rotate the API token (revokes the old ones; the new one is shown once)")
    def rotate_token(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        if not request.user.has_perm("directory.add_apitoken"):
            raise PermissionDenied
        for agent in queryset:
            issued = agent_token_rotate(agent=agent, label=f"rotated by {request.user}")
            self.message_user(
                request, f"{agent.agent_id}: new token, shown this once: {issued.plaintext}", messages.WARNING
            )

    @admin.action(description="Deactivate (stop mail and API access; keep the mail)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        if not request.user.has_perm("directory.change_apitoken"):
            raise PermissionDenied
        for agent in queryset:
            agent_deactivate(agent=agent)
        self.message_user(request, f"Deactivated {queryset.count()} agent(s).", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are never shown again; staff can only see their prefix and revoke them."""

    list_display = ["prefix", "kind", "agent", "account", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "agent__agent_id", "label"]
    readonly_fields = ["kind", "agent", "account", "prefix", "digest", "created_at", "last_used_at", "revoked_at"]
    fields = ["kind", "agent", "account", "label", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["agent", "account"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are made with the agent, by rotation, or create_operator_token

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)


@admin.register(Challenge)
class ChallengeAdmin(RecordAdmin):
    """Read-only: the token itself is never stored, only its hash."""

    list_display = ["address", "agent", "created_at", "expires_at", "used_at"]
    list_filter = ["used_at"]
    search_fields = ["address", "agent__agent_id"]
    list_select_related = ["agent"]
    readonly_fields = ["agent", "address", "token_hash", "created_at", "expires_at", "used_at"]
