from __future__ import annotations

from django.contrib import admin

from webhooks.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "type", "created_at"]
    list_filter = ["type"]
    search_fields = ["id", "agent__agent_id"]
    show_full_result_count = False
