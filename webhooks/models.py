"""The event log: every state change worth telling an agent, written in the same
transaction as the change. Webhook delivery and long-poll read from it."""

from __future__ import annotations

from typing import Any

from django.db import models

from assmbl.ids import PrefixedId
from directory.models import Account, Agent


class Event(models.Model):
    class Type(models.TextChoices):
        """Every event type the service records, and so every type an endpoint may subscribe
        to: ``events_record`` refuses any other, and docs/webhooks.md describes each."""

        MESSAGE_RECEIVED = "message.received"
        MESSAGE_QUARANTINED = "message.quarantined"
        MESSAGE_SENT = "message.sent"
        MESSAGE_DELIVERED = "message.delivered"
        MESSAGE_BOUNCED = "message.bounced"
        MESSAGE_COMPLAINED = "message.complained"
        MESSAGE_FAILED = "message.failed"
        MESSAGE_SCHEDULED = "message.scheduled"
        MESSAGE_PENDING_APPROVAL = "message.pending_approval"
        MESSAGE_APPROVED = "message.approved"
        MESSAGE_REJECTED = "message.rejected"
        MESSAGE_CANCELED = "message.canceled"
        SENDER_VERIFIED = "sender.verified"
        SENDER_BLOCKED = "sender.blocked"

    # The sequence is the pull cursor; the public id is the webhook-id receivers dedupe on.
    seq = models.BigAutoField(primary_key=True)
    id = models.CharField(max_length=40, unique=True, default=PrefixedId("evt"), editable=False)
    # Looked up through webhooks_event_agent_seq (agent first), not an index of its own.
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="events", db_index=False)
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


class EndpointQuerySet(models.QuerySet["Endpoint"]):
    def for_account(self, account: Account) -> EndpointQuerySet:
        return self.filter(account=account)

    def registered_by(self, agent: Agent) -> EndpointQuerySet:
        return self.filter(created_by=agent)

    def enabled(self) -> EndpointQuerySet:
        return self.filter(enabled=True)

    def targeting(self, agents: list[Agent]) -> list[list[Endpoint]]:
        """For each of ``agents``, the endpoints of this queryset that want its events: its
        account's endpoints for all agents or naming it. Two queries for any number of agents
        (a batch of ingested mail); type filtering is ``Endpoint.wants``, in Python (JSON
        containment is not portable to SQLite, and an account has few endpoints)."""
        endpoints = list(self.filter(account_id__in={a.account_id for a in agents}))
        if not endpoints:
            return [[] for _ in agents]
        named = set(
            Endpoint.agents.through.objects.filter(
                endpoint_id__in=[e.pk for e in endpoints if not e.all_agents], agent_id__in={a.pk for a in agents}
            ).values_list("endpoint_id", "agent_id")
        )
        return [
            [e for e in endpoints if e.account_id == a.account_id and (e.all_agents or (e.pk, a.pk) in named)]
            for a in agents
        ]


class Endpoint(models.Model):
    """A URL that receives signed events for one or more agents of an account.

    An agent token registers endpoints for itself (``created_by`` = that agent, ``agents`` =
    [it]); an operator token for a chosen set of its account's agents or all of them.
    """

    id = models.CharField(primary_key=True, max_length=40, default=PrefixedId("whk"), editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints")
    created_by = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="registered_webhooks"
    )
    agents = models.ManyToManyField(Agent, blank=True, related_name="webhook_endpoints")
    all_agents = models.BooleanField(default=False)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True)  # empty = every type
    enabled = models.BooleanField(default=True)
    # Kept in the clear: signing needs the key itself, as with every HMAC webhook scheme.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # Fan-out on every event: the enabled endpoints of the event's account.
            models.Index(fields=["account", "enabled"], name="webhooks_endpoint_account"),
        ]

    def __str__(self) -> str:
        return f"{self.id} → {self.url}"

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def due(self, now: Any) -> DeliveryQuerySet:
        return self.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now, endpoint__enabled=True)

    def queued(self, since: Any) -> DeliveryQuerySet:
        """Pending rows whose task was queued after ``since`` and has not started yet."""
        return self.filter(state=Delivery.State.PENDING, queued_at__gte=since)

    def unqueued(self, since: Any) -> DeliveryQuerySet:
        """Rows no live task holds: never queued, or queued before ``since`` (a task lost with
        the broker or a killed worker)."""
        return self.filter(models.Q(queued_at__isnull=True) | models.Q(queued_at__lt=since))

    def for_endpoint(self, endpoint: Endpoint) -> DeliveryQuerySet:
        return self.filter(endpoint=endpoint)


class Delivery(models.Model):
    """One event owed to one endpoint. ``webhook_id`` is the event's public id, so it stays
    the same across retries and replays: it is the receiver's dedupe key."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    id = models.CharField(primary_key=True, max_length=40, default=PrefixedId("whd"), editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    webhook_id = models.CharField(max_length=40)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Also the attempt's lease: a worker pushes it forward while its attempt is in progress.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set when a dispatcher queues the row's task, cleared when the task starts the attempt:
    # a queued row is not queued again however long the queue, and counts against
    # WEBHOOKS_MAX_IN_FLIGHT.
    queued_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "id"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The dispatcher's claim: pending rows whose next attempt is due.
            models.Index(fields=["state", "next_attempt_at"], name="webhooks_delivery_due"),
            # The dispatcher's count of queued rows; partial, so it holds only those few.
            models.Index(
                fields=["queued_at"], condition=models.Q(queued_at__isnull=False), name="webhooks_delivery_queued"
            ),
            # GET /v1/webhooks/{id}/deliveries, newest first.
            models.Index(fields=["endpoint", "-created_at"], name="webhooks_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} → {self.endpoint_id} ({self.state})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=1024, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"#{self.number} {self.status_code or self.error}"
