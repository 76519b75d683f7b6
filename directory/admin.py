from __future__ import annotations

from django.contrib import admin

from directory.models import Account, Agent, ApiToken, Sender, SenderRule


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
    list_display = ["address", "agent", "status", "last_seen_at", "message_count"]
    list_filter = ["status"]
    search_fields = ["address", "agent__agent_id"]


@admin.register(SenderRule)
class SenderRuleAdmin(admin.ModelAdmin):
    list_display = ["pattern", "action", "agent", "note", "created_at"]
    list_filter = ["action"]
    search_fields = ["pattern"]
