from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from webhooks.services import delivery_retry, endpoint_replay, endpoint_update


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "type", "created_at"]
    list_filter = ["type"]
    search_fields = ["id", "agent__agent_id"]
    show_full_result_count = False


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["id", "url", "account", "state", "failing_since", "disabled_reason", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["id", "url", "account__name"]
    readonly_fields = ["id", "secret", "previous_secret", "failing_since", "disabled_at", "created_at", "updated_at"]
    filter_horizontal = ["agents"]
    actions = ["reenable", "replay_last_day"]

    @admin.display(description="state", ordering="enabled")
    def state(self, endpoint: Endpoint) -> str:
        # Disabled endpoints stand out: staff are the ones told when a receiver dies.
        if not endpoint.enabled:
            return format_html('<strong style="color:{}">DISABLED</strong>', "#ba2121")
        if endpoint.failing_since:
            return format_html('<span style="color:{}">failing</span>', "#c67b00")
        return "ok"

    @admin.action(description="Re-enable (resets the failure clock)")
    def reenable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_update(endpoint=endpoint, enabled=True)
        self.message_user(request, f"Re-enabled {queryset.count()} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Replay the last 24 hours of events")
    def replay_last_day(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        from datetime import timedelta

        from django.utils import timezone

        total = sum(endpoint_replay(endpoint=e, since=timezone.now() - timedelta(days=1)) for e in queryset)
        self.message_user(request, f"Queued {total} deliveries.", messages.SUCCESS)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "status_code", "latency_ms", "response_excerpt", "error", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "webhook_id", "endpoint", "state", "attempts", "last_status", "next_attempt_at", "queued_at", "created_at"]
    list_filter = ["state"]
    search_fields = ["id", "webhook_id", "endpoint__id", "endpoint__url"]
    list_select_related = ["endpoint"]
    raw_id_fields = ["event", "endpoint"]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]
    show_full_result_count = False

    @admin.action(description="Retry now")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for delivery in queryset:
            delivery_retry(delivery=delivery)
        self.message_user(request, f"Scheduled {queryset.count()} deliveries for retry.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ["delivery", "number", "status_code", "latency_ms", "error", "created_at"]
    list_filter = ["status_code"]
    search_fields = ["delivery__id", "delivery__webhook_id"]
    raw_id_fields = ["delivery"]
    show_full_result_count = False
