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
from mail.models import Suppression
from mail.outbound import suppression_record


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
    detail = _detail(event)
    message = message_track(provider_message_id=event.message_id, event_type=event.event_type, detail=detail)
    reason = _suppression_reason(event)
    if message is not None and reason and event.recipient:
        suppression_record(message=message, recipient=event.recipient, reason=reason, detail=detail)


def _suppression_reason(event: AnymailTrackingEvent) -> str:
    """A complaint, or a hard bounce: anymail describes an SES bounce as
    ``{bounceType}: {bounceSubType}``, and only ``Permanent`` ones are hard (``Transient``
    is a full mailbox or a greylisting; ``Undetermined`` is not proof enough)."""
    if event.event_type == "complained":
        return Suppression.Reason.COMPLAINT
    if event.event_type == "bounced" and (event.description or "").startswith("Permanent"):
        return Suppression.Reason.BOUNCE
    return ""


urlpatterns = [
    path(
        "anymail/amazon_ses/tracking/",
        AmazonSESTrackingWebhookView.as_view(),
        name="amazon_ses_tracking_webhook",
    ),
]
