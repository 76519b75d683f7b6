from __future__ import annotations

from django.apps import AppConfig


class MailConfig(AppConfig):
    name = "mail"
    verbose_name = "Mail"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, which Django loads after apps.py.
        from mail.message_content import message_received_payloads_complete
        from webhooks.events import payload_completer_register

        # message.received in the event log (GET /v1/events, the SDK's wait_for_message, MCP)
        # carries ExtractedText and Codes for every agent; ingest computes them only for
        # agents whose webhooks need them in the payload they push.
        payload_completer_register("message.received", message_received_payloads_complete)
