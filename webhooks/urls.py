from __future__ import annotations

from django.urls import URLPattern, path

from webhooks import api

urlpatterns: list[URLPattern] = [
    path("webhooks", api.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/<str:endpoint_id>", api.WebhookDetailView.as_view(), name="webhook"),
    path(
        "webhooks/<str:endpoint_id>/rotate-secret", api.WebhookRotateSecretView.as_view(), name="webhook-rotate-secret"
    ),
    path("webhooks/<str:endpoint_id>/replay", api.WebhookReplayView.as_view(), name="webhook-replay"),
    path("webhooks/<str:endpoint_id>/deliveries", api.WebhookDeliveriesView.as_view(), name="webhook-deliveries"),
    path("events", api.EventListView.as_view(), name="events"),
    path("events/stream", api.EventStreamView.as_view(), name="events-stream"),
]
