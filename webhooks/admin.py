from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from assmbl.admin import RecordAdmin, RecordInline
from webhooks.egress import UnsafeUrl, url_check
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event
from webhooks.services import (
    UnsafeUrlError,
    delivery_retry,
    endpoint_create,
    endpoint_replay,
    endpoint_rotate_secret,
    endpoint_update,
)


@admin.register(Event)
class EventAdmin(RecordAdmin):
    list_display = ["id", "agent", "type", "created_at"]
    list_filter = ["type"]
    search_fields = ["id", "agent__agent_id"]
    show_full_result_count = False


class EndpointForm(forms.ModelForm):
    """What staff may set on an endpoint; the secrets are not fields of it, so no page of the
    console renders them (they are shown once, in the message bar, as the API does)."""

    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=Event.Type.choices, required=False, widget=forms.CheckboxSelectMultiple, help_text="none = every type"
    )

    class Meta:
        model = Endpoint
        fields = ["account", "url", "description", "event_types", "enabled", "agents"]
        help_texts = {"agents": "none = every agent of the account (ignored for an agent's own endpoint)"}

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            url_check(url)
        except UnsafeUrl as exc:
            raise forms.ValidationError(f"{UnsafeUrlError.default_message} {exc}") from None
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # ModelForm.clean returns cleaned_data
        account = data.get("account") if self.instance._state.adding else self.instance.account
        if account is not None and any(a.account_id != account.pk for a in data.get("agents") or []):
            self.add_error("agents", "Every agent must belong to the endpoint's account.")
        return data


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Endpoints: created through ``endpoint_create`` (the secret is shown once, in the message
    bar), changed through ``endpoint_update``, secrets rotated through ``endpoint_rotate_secret``."""

    form = EndpointForm
    list_display = ["id", "url", "account", "state", "failing_since", "disabled_reason", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["id", "url", "account__name"]
    filter_horizontal = ["agents"]
    actions = ["reenable", "rotate_secret", "replay_last_day"]
    STATUS_FIELDS = [
        "id",
        "created_by",
        "all_agents",
        "previous_secret_expires_at",
        "failing_since",
        "disabled_reason",
        "disabled_at",
        "created_at",
        "updated_at",
    ]

    def get_fields(self, request: HttpRequest, obj: Endpoint | None = None) -> list[Any]:
        return list(EndpointForm.Meta.fields) + (self.STATUS_FIELDS if obj else [])

    def get_readonly_fields(self, request: HttpRequest, obj: Endpoint | None = None) -> list[str]:
        if obj is None:
            return []
        # An agent's own endpoint serves that agent only, as endpoint_update keeps it.
        return ["account", *(["agents"] if obj.created_by_id else []), *self.STATUS_FIELDS]

    @admin.display(description="state", ordering="enabled")
    def state(self, endpoint: Endpoint) -> str:
        # Disabled endpoints stand out: staff are the ones told when a receiver dies.
        if not endpoint.enabled:
            return format_html('<strong style="color:{}">DISABLED</strong>', "#ba2121")
        if endpoint.failing_since:
            return format_html('<span style="color:{}">failing</span>', "#c67b00")
        return "ok"

    def save_model(self, request: HttpRequest, obj: Endpoint, form: EndpointForm, change: bool) -> None:
        data = form.cleaned_data
        agent_ids = [a.agent_id for a in data.get("agents") or []]
        fields = {
            "url": data["url"],
            "event_types": data["event_types"],
            "enabled": data["enabled"],
            "description": data["description"],
        }
        if change:
            # A fresh copy: the form has already written its values onto ``obj``, and the
            # service decides (re-enabling resets the failure clock) by comparing with the row.
            endpoint = endpoint_update(
                endpoint=Endpoint.objects.get(pk=obj.pk),
                **fields,
                agent_ids=agent_ids or None,
                all_agents=not agent_ids,
            )
        else:
            endpoint = endpoint_create(account=data["account"], agent_ids=agent_ids or None, **fields)
            self.message_user(
                request,
                f"Created {endpoint.id}. Its signing secret, shown this once: {endpoint.secret}",
                messages.WARNING,
            )
        obj.pk = endpoint.pk
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the agents were set by the service in save_model

    @admin.action(description="Re-enable (resets the failure clock)", permissions=["change"])
    def reenable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_update(endpoint=endpoint, enabled=True)
        self.message_user(request, f"Re-enabled {queryset.count()} endpoint(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate the signing secret (the old one signs for 24 more hours; the new one is shown once)",
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            endpoint_rotate_secret(endpoint=endpoint)
            self.log_change(request, endpoint, "Rotated the signing secret")
            self.message_user(
                request,
                f"Endpoint {endpoint.id}: new signing secret, shown this once: {endpoint.secret}",
                messages.WARNING,
            )

    @admin.action(description="Replay the last 24 hours of events", permissions=["change"])
    def replay_last_day(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        total = sum(endpoint_replay(endpoint=e, since=timezone.now() - timedelta(days=1)) for e in queryset)
        self.message_user(request, f"Queued {total} deliveries.", messages.SUCCESS)


class DeliveryAttemptInline(RecordInline):
    model = DeliveryAttempt
    readonly_fields = ["number", "status_code", "latency_ms", "response_excerpt", "error", "created_at"]


@admin.register(Delivery)
class DeliveryAdmin(RecordAdmin):
    list_display = [
        "id",
        "webhook_id",
        "endpoint",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
        "queued_at",
        "created_at",
    ]
    list_filter = ["state"]
    search_fields = ["id", "webhook_id", "endpoint__id", "endpoint__url"]
    list_select_related = ["endpoint"]
    raw_id_fields = ["event", "endpoint"]
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]
    show_full_result_count = False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.change_delivery")

    @admin.action(description="Retry now", permissions=["retry"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for delivery in queryset:
            delivery_retry(delivery=delivery)
        self.message_user(request, f"Scheduled {queryset.count()} deliveries for retry.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(RecordAdmin):
    list_display = ["delivery", "number", "status_code", "latency_ms", "error", "created_at"]
    list_filter = ["status_code"]
    search_fields = ["delivery__id", "delivery__webhook_id"]
    raw_id_fields = ["delivery"]
    show_full_result_count = False
