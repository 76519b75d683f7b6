"""Delivery tracking: anymail's Amazon SES tracking webhook (SNS → this URL) normalises
SES delivery, bounce and complaint notifications into anymail ``tracking`` signals, which
update the outbound message's status through ``mail.dispatch.message_track``.

Configure the SES configuration set's event destination (or the identity's notification
topics) to an SNS topic subscribed to ``<PUBLIC_BASE_URL>/anymail/amazon_ses/tracking/``.
"""

from __future__ import annotations

from typing import Any

from anymail.signals import AnymailTrackingEvent, tracking
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from django.dispatch import receiver
from django.urls import path

from mail.dispatch import message_track


def _detail(event: AnymailTrackingEvent) -> str:
    parts = [event.event_type]
    if event.recipient:
        parts.append(event.recipient)
    if event.reject_reason:
        parts.append(event.reject_reason)
    if event.description:
        parts.append(event.description)
    if event.mta_response:
        parts.append(event.mta_response)
    return ": ".join(parts)


# Connected here, next to the route that emits it: this module is imported with the URL
# conf, which is always loaded before the webhook view can run. dispatch_uid keeps it single.
@receiver(tracking, dispatch_uid="mail.tracking.message_track")
def _on_tracking(sender: Any, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    if esp_name != "Amazon SES" or not event.message_id:
        return
    message_track(provider_message_id=event.message_id, event_type=event.event_type, detail=_detail(event))


urlpatterns = [
    path(
        "anymail/amazon_ses/tracking/",
        AmazonSESTrackingWebhookView.as_view(),
        name="amazon_ses_tracking_webhook",
    ),
]
