"""SES inbound over SNS: ``POST /webhooks/ses/inbound``.

anymail's Amazon SES inbound view checks the SNS headers and optional basic auth but not
the signature, and it parses the message in the request. This subclass adds the signature
and topic checks (``mail.sources.sns``), confirms subscriptions only for our topics, and
does only the durable part (``mail.sources.ses.ses_notification_accept``): parsing happens
in the pipeline's task, so SNS gets its 2xx fast.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailWebhookValidationFailure
from anymail.webhooks.amazon_ses import AmazonSESBaseWebhookView, AmazonSESInboundWebhookView
from anymail.webhooks.base import AnymailBasicAuthMixin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path

from mail.sources.ses import SesNotificationError, ses_notification_accept
from mail.sources.sns import SnsVerificationError, sns_message_verify, sns_subscription_confirm

log = logging.getLogger(__name__)


class SesInboundWebhookView(AmazonSESInboundWebhookView):
    # The signature is the authentication; basic auth (ANYMAIL WEBHOOK_SECRET) still
    # applies on top when it is configured.
    warn_if_no_basic_auth = False

    def run_validators(self, request: HttpRequest) -> None:
        # Explicit order instead of anymail's MRO walk: basic auth, then our signature
        # check (which refuses unknown types with a 400 and before any certificate fetch
        # when it can), then anymail's header/body consistency checks.
        AnymailBasicAuthMixin.validate_request(self, request)
        try:
            message = self._parse_sns_message(request)
        except AnymailAPIError as err:
            raise AnymailWebhookValidationFailure("body is not JSON") from err
        if not isinstance(message, dict):
            raise AnymailWebhookValidationFailure("body is not an SNS message")
        try:
            sns_message_verify(message)
        except SnsVerificationError as err:
            log.warning("refused SNS message: %s", err)
            raise AnymailWebhookValidationFailure(str(err)) from err
        AmazonSESBaseWebhookView.validate_request(self, request)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.basic_auth and not request.META.get("HTTP_AUTHORIZATION"):
            return super().post(request, *args, **kwargs)  # anymail's 401 challenge
        self.run_validators(request)
        message = self._parse_sns_message(request)
        if message["Type"] == "SubscriptionConfirmation":
            try:
                sns_subscription_confirm(message)
            except SnsVerificationError as err:
                raise AnymailWebhookValidationFailure(str(err)) from err
            log.info("confirmed SNS subscription to %s", message.get("TopicArn"))
        elif message["Type"] == "Notification":
            self.notification_accept(message)
        return HttpResponse(status=200)

    def notification_accept(self, message: dict[str, Any]) -> None:
        try:
            notification = json.loads(message.get("Message") or "")
        except ValueError:
            # SES sends a plain-text notice when a topic is first attached to a rule.
            log.info("non-JSON SNS notification on %s ignored", message.get("TopicArn"))
            return
        try:
            ses_notification_accept(notification=notification, source="ses")
        except SesNotificationError as err:
            # Retrying will not fix a notification we don't understand: acknowledge it.
            log.error("SES notification %s not ingested: %s", message.get("MessageId"), err)


urlpatterns: list[URLPattern] = [
    path("webhooks/ses/inbound", SesInboundWebhookView.as_view(), name="ses-inbound"),
]
