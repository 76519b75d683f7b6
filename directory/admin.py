from __future__ import annotations

from django.contrib import admin

from directory.models import Account, Agent, ApiToken, Challenge, Sender, SenderRule


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["agent_id", "display_name", "account", "policy", "is_active", "created_at"]
    list_filter = ["policy", "is_active", "account"]
    search_fields = ["agent_id", "display_name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "kind", "agent", "account", "label", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", "revoked_at"]
    search_fields = ["prefix", "agent__agent_id", "label"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    list_display = ["address", "agent", "status", "last_seen_at", "message_count", "verified_at", "challenged_at"]
    list_filter = ["status", "agent__account"]
    search_fields = ["address", "agent__agent_id"]
    list_select_related = ["agent"]
    readonly_fields = ["last_seen_at", "message_count", "verified_at", "challenged_at", "created_at"]
    date_hierarchy = "last_seen_at"


@admin.register(SenderRule)
class SenderRuleAdmin(admin.ModelAdmin):
    list_display = ["pattern", "action", "scope", "agent", "note", "created_at"]
    list_filter = ["action", ("agent", admin.EmptyFieldListFilter)]
    search_fields = ["pattern", "agent__agent_id", "note"]
    list_select_related = ["agent"]

    @admin.display(description="scope")
    def scope(self, rule: SenderRule) -> str:
        return "agent" if rule.agent_id else "global"


@admin.register(Challenge)
class ChallengeAdmin(admin.ModelAdmin):
    """Read-only: the token itself is never stored, only its hash."""

    list_display = ["address", "agent", "created_at", "expires_at", "used_at"]
    list_filter = ["used_at"]
    search_fields = ["address", "agent__agent_id"]
    list_select_related = ["agent"]
    readonly_fields = ["agent", "address", "token_hash", "created_at", "expires_at", "used_at"]

    def has_add_permission(self, request: object) -> bool:
        return False
