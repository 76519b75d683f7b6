"""The event log: every state change worth telling an agent, written in the same
transaction as the change. Webhook delivery and long-poll read from it."""

from __future__ import annotations

from django.db import models

from assmbl.ids import PrefixedId
from directory.models import Agent


class Event(models.Model):
    class Type(models.TextChoices):
        MESSAGE_RECEIVED = "message.received"
        MESSAGE_QUARANTINED = "message.quarantined"
        MESSAGE_SENT = "message.sent"
        MESSAGE_DELIVERED = "message.delivered"
        MESSAGE_BOUNCED = "message.bounced"
        MESSAGE_COMPLAINED = "message.complained"
        SENDER_VERIFIED = "sender.verified"
        SENDER_BLOCKED = "sender.blocked"

    # The sequence is the pull cursor; the public id is the webhook-id receivers dedupe on.
    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=40, unique=True, default=PrefixedId("evt"), editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40, choices=Type.choices)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # GET /v1/events?after=: an agent's events in sequence order.
            models.Index(fields=["agent", "seq"], name="webhooks_event_agent_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"
