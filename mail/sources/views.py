"""SES inbound over SNS: ``POST /webhooks/ses/inbound``.

anymail's Amazon SES inbound view checks the SNS headers and optional basic auth but not
the signature, and it parses the message in the request. We extend it through its public
extension points: ``SnsSignatureMixin`` contributes a ``validate_request`` (anymail runs
every one it finds in the class chain) that checks the signature and topic
(``mail.sources.sns``), and ``parse_events`` (the method anymail's providers implement)
confirms subscriptions only for our topics and does only the durable part
(``mail.sources.ses.ses_notification_accept``): parsing happens in the pipeline's task, so
SNS gets its 2xx fast. anymail's ``post`` is used as is (its 401 challenge, its validators,
its 200).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.webhooks.amazon_ses import AmazonSESInboundWebhookView
from anymail.webhooks.base import AnymailBasicAuthMixin
from django.http import HttpRequest
from django.urls import URLPattern, path

from mail.sources.ses import SesNotificationError, ses_notification_accept
from mail.sources.sns import SnsVerificationError, sns_message_verify, sns_subscription_confirm

log = logging.getLogger(__name__)


def sns_message(request: HttpRequest) -> dict[str, Any]:
    """The SNS message in the request's body (a JSON object), or a validation failure (400)."""
    try:
        message = json.loads(request.body.decode(request.encoding or "utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise AnymailWebhookValidationFailure("body is not JSON") from err
    if not isinstance(message, dict):
        raise AnymailWebhookValidationFailure("body is not an SNS message")
    return message


class SnsSignatureMixin(AnymailBasicAuthMixin):  # type: ignore[misc]  # anymail ships no types
    """Refuses (400) an SNS message that is not signed by SNS for a topic in
    ``SES_SNS_TOPIC_ARNS``. First in the class chain, so anymail runs it before its own
    header and body checks: a body that is not an SNS message gets a 400, not anymail's 500."""

    def validate_request(self, request: HttpRequest) -> None:
        # Basic auth (ANYMAIL WEBHOOK_SECRET), when configured, first: a request without
        # the shared secret never makes us fetch a certificate. anymail checks it again
        # later in its chain; the second check is a constant-time compare.
        AnymailBasicAuthMixin.validate_request(self, request)
        try:
            sns_message_verify(sns_message(request))
        except SnsVerificationError as err:
            log.warning("refused SNS message: %s", err)
            raise AnymailWebhookValidationFailure(str(err)) from err


class SesInboundWebhookView(SnsSignatureMixin, AmazonSESInboundWebhookView):  # type: ignore[misc]  # anymail ships no types
    # The signature is the authentication; basic auth (ANYMAIL WEBHOOK_SECRET) still
    # applies on top when it is configured.
    warn_if_no_basic_auth = False

    def parse_events(self, request: HttpRequest) -> list[Any]:
        """Accepts the validated message; no anymail inbound signal is sent (the pipeline's
        task parses and indexes the mail)."""
        message = sns_message(request)
        if message["Type"] == "SubscriptionConfirmation":
            try:
                sns_subscription_confirm(message)
            except SnsVerificationError as err:
                raise AnymailWebhookValidationFailure(str(err)) from err
            log.info("confirmed SNS subscription to %s", message.get("TopicArn"))
        elif message["Type"] == "Notification":
            self.notification_accept(message)
        return []

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
