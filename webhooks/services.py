"""Writes of the event log and of webhook endpoints and deliveries.

``event_record`` is the one seam every producer calls. It writes the event and the delivery
rows it owes in the caller's transaction (so a crash after commit loses nothing: the periodic
dispatcher picks the rows up), and kicks the immediate attempt on commit.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from assmbl import domain
from assmbl.celery import task_queue
from assmbl.wakeup import wake_on_commit
from directory.models import Account, Agent
from webhooks.egress import UnsafeUrl, egress_request, url_check
from webhooks.events import event_writers_enter
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event

log = logging.getLogger(__name__)

# The Svix schedule: the delay before attempt n+1 after attempt n failed (attempt 1 is
# immediate). Eight attempts in all, spread over about 28 hours.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
JITTER = 0.1  # up to +10% of the delay, so a recovering receiver isn't hit by a thundering herd
MAX_RETRY_AFTER = timedelta(hours=10)
# How long a row is reserved for the worker attempting it; longer than the request timeout,
# so it only lapses when a worker died mid-attempt (then it is retried).
CLAIM_LEASE = timedelta(seconds=60)
ROTATION_OVERLAP = timedelta(hours=24)
REPLAY_LIMIT = 10_000


class UnsafeUrlError(domain.Invalid):
    code = "unsafe_url"
    default_message = "The webhook URL is not allowed: it must be http(s) on a public address."


# --- Events -----------------------------------------------------------------------------------


def _shrink(value: Any, *, max_chars: int, max_items: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= max_chars else value[: max_chars - 1] + "…"
    if isinstance(value, list):
        return [_shrink(v, max_chars=max_chars, max_items=max_items) for v in value[:max_items]]
    if isinstance(value, dict):
        return {k: _shrink(v, max_chars=max_chars, max_items=max_items) for k, v in value.items()}
    return value


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def payload_fit(payload: dict[str, Any], *, limit: int | None = None) -> dict[str, Any]:
    """Make ``payload`` fit ``WEBHOOKS_MAX_PAYLOAD_BYTES`` of JSON by truncating long strings
    and lists (marked ``"Truncated": true``) rather than dropping the event: the agent can
    always fetch the full message by its id."""
    limit = limit or settings.WEBHOOKS_MAX_PAYLOAD_BYTES
    if _json_size(payload) <= limit:
        return payload
    for max_chars, max_items in ((1024, 100), (256, 20), (64, 5)):
        shrunk: dict[str, Any] = _shrink(payload, max_chars=max_chars, max_items=max_items)
        shrunk["Truncated"] = True
        if _json_size(shrunk) <= limit:
            return shrunk
    # Pathological (thousands of keys): keep only the identifiers.
    keep = ("MessageID", "AgentID", "Direction", "ThreadID", "ReceivedAt")
    return {k: payload[k] for k in keep if k in payload} | {"Truncated": True}


def event_record(*, agent: Agent, type: str, payload: dict[str, Any]) -> Event:
    """Record an event in the caller's transaction; delivery happens after commit."""
    return events_record([(agent, type, payload)])[0]


def events_record(items: list[tuple[Agent, str, dict[str, Any]]]) -> list[Event]:
    """Record several events (a batch of ingested mail) in three statements: the events,
    the endpoints that want them, their delivery rows. A type outside ``Event.Type`` is a
    bug (ValueError): it could be recorded but never subscribed to."""
    if not items:
        return []
    if unknown := {type for _, type, _ in items} - set(Event.Type.values):
        raise ValueError(f"unknown event types {sorted(unknown)}: add them to webhooks.models.Event.Type")
    with transaction.atomic():
        event_writers_enter()
        return _events_insert(items)


def _events_insert(items: list[tuple[Agent, str, dict[str, Any]]]) -> list[Event]:
    events = Event.objects.bulk_create(
        [Event(agent=agent, type=type, payload=payload_fit(payload)) for agent, type, payload in items]
    )
    wake_on_commit(agent.pk for agent, _, _ in items)
    now = timezone.now()
    deliveries = [
        Delivery(event=event, endpoint=endpoint, webhook_id=event.id, next_attempt_at=now)
        for event, endpoints in zip(
            events, Endpoint.objects.enabled().targeting([agent for agent, _, _ in items]), strict=True
        )
        for endpoint in endpoints
        if endpoint.wants(event.type)
    ]
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        for seq in sorted({d.event.seq for d in deliveries}):
            transaction.on_commit(functools.partial(_dispatch, seq))
    return events


def _dispatch(seq: int) -> None:
    """The immediate attempt: hand the event's fresh deliveries to the worker. If the broker
    is down, the periodic dispatcher delivers them a few seconds later instead."""
    try:
        task_queue("webhooks.tasks.dispatch_event", seq)
    except Exception:
        log.warning("could not queue webhook dispatch for event %s; the sweep will", seq, exc_info=True)


# --- Endpoints --------------------------------------------------------------------------------


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check_url(url: str) -> None:
    try:
        url_check(url)
    except UnsafeUrl as exc:
        raise UnsafeUrlError(str(exc), details={"url": url}) from None


def _check_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(Event.Type.values))
    if unknown:
        raise domain.Invalid(
            f"Unknown event types: {', '.join(unknown)}.",
            code="unknown_event_type",
            details={"allowed": list(Event.Type.values)},
        )
    return sorted(set(event_types))


def _agents_of(account: Account, agent_ids: Iterable[str]) -> list[Agent]:
    wanted = set(agent_ids)
    agents = list(Agent.objects.filter(account=account, agent_id__in=wanted))
    missing = wanted - {a.agent_id for a in agents}
    if missing:
        # Another account's agent reads exactly like an unknown one.
        raise domain.Invalid(
            f"Unknown agents: {', '.join(sorted(missing))}.", code="unknown_agent", details={"agents": sorted(missing)}
        )
    return agents


@transaction.atomic
def endpoint_create(
    *,
    account: Account,
    url: str,
    created_by: Agent | None = None,
    agent_ids: list[str] | None = None,
    event_types: list[str] | None = None,
    enabled: bool = True,
    description: str = "",
) -> Endpoint:
    """Register an endpoint. With ``created_by`` (an agent token) it serves that agent only;
    otherwise (an operator) ``agent_ids`` of the account, or every agent when omitted."""
    _check_url(url)
    endpoint = Endpoint(
        account=account,
        created_by=created_by,
        url=url,
        event_types=_check_event_types(event_types or []),
        enabled=enabled,
        description=description,
        secret=_new_secret(),
    )
    if created_by is not None:
        endpoint.save()
        endpoint.agents.set([created_by])
    elif agent_ids is None:
        endpoint.all_agents = True
        endpoint.save()
    else:
        agents = _agents_of(account, agent_ids)
        if not agents:
            raise domain.Invalid("Give at least one agent, or omit agents for all of them.", code="no_agents")
        endpoint.save()
        endpoint.agents.set(agents)
    return endpoint


@transaction.atomic
def endpoint_update(
    *,
    endpoint: Endpoint,
    url: str | None = None,
    event_types: list[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
    agent_ids: list[str] | None = None,
    all_agents: bool | None = None,
) -> Endpoint:
    if url is not None and url != endpoint.url:
        _check_url(url)
        endpoint.url = url
    if event_types is not None:
        endpoint.event_types = _check_event_types(event_types)
    if description is not None:
        endpoint.description = description
    if enabled is not None:
        if enabled and not endpoint.enabled:
            # Re-enabling is the operator saying "it's fixed": start the failure clock afresh.
            endpoint.failing_since = None
            endpoint.disabled_reason = ""
            endpoint.disabled_at = None
        elif not enabled and endpoint.enabled:
            endpoint.disabled_reason = "disabled by the owner"
            endpoint.disabled_at = timezone.now()
        endpoint.enabled = enabled
    if endpoint.created_by_id is None:
        if all_agents:
            endpoint.all_agents = True
            endpoint.agents.clear()
        elif agent_ids is not None:
            agents = _agents_of(endpoint.account, agent_ids)
            if not agents:
                raise domain.Invalid("Give at least one agent, or set all_agents.", code="no_agents")
            endpoint.all_agents = False
            endpoint.agents.set(agents)
    endpoint.save()
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()


@transaction.atomic
def endpoint_rotate_secret(*, endpoint: Endpoint, overlap: timedelta = ROTATION_OVERLAP) -> Endpoint:
    """A new secret signs from now on; the old one keeps signing too until the overlap ends,
    so receivers can switch without dropping a delivery."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = timezone.now() + overlap
    endpoint.secret = _new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return endpoint


@transaction.atomic
def endpoint_disable(*, endpoint: Endpoint, reason: str) -> None:
    Endpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_reason=reason[:200], disabled_at=timezone.now()
    )
    log.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


@transaction.atomic
def endpoint_replay(
    *, endpoint: Endpoint, event_id: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> int:
    """Queue the endpoint's events again (one event, or a time range). Deliveries keep the
    event's id as webhook-id, so a receiver that already has them can dedupe."""
    events = Event.objects.filter(agent__account_id=endpoint.account_id)
    if not endpoint.all_agents:
        events = events.filter(agent__in=endpoint.agents.all())
    if endpoint.event_types:
        events = events.filter(type__in=endpoint.event_types)
    if event_id is not None:
        events = events.filter(id=event_id)
        if not events.exists():
            raise domain.NotFound("No such event for this endpoint.", code="event_not_found")
    else:
        if since is None:
            raise domain.Invalid("Give event_id, or since (and optionally until).", code="replay_range_required")
        events = events.filter(created_at__gte=since)
        if until is not None:
            events = events.filter(created_at__lt=until)
    selected = list(events.order_by("seq").values_list("seq", "id")[: REPLAY_LIMIT + 1])
    if len(selected) > REPLAY_LIMIT:
        raise domain.Invalid(f"At most {REPLAY_LIMIT} events per replay; narrow the range.", code="replay_too_large")
    now = timezone.now()
    Delivery.objects.bulk_create(
        Delivery(event_id=seq, endpoint=endpoint, webhook_id=public_id, next_attempt_at=now)
        for seq, public_id in selected
    )
    return len(selected)


@transaction.atomic
def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Staff's "retry now" (admin): due immediately, with a fresh budget of attempts."""
    delivery.state = Delivery.State.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["state", "attempts", "next_attempt_at"])
    return delivery


# --- Delivery ---------------------------------------------------------------------------------


def deliveries_claim(*, event_seq: int | None = None, limit: int | None = None) -> list[str]:
    """Claim due deliveries for queueing: at most ``limit`` (WEBHOOKS_DISPATCH_BATCH), and no
    more than the room left under WEBHOOKS_MAX_IN_FLIGHT queued rows. A row already queued is
    never claimed again while its task may still come, however long the queue: each claim is
    a conditional update whose row count says whether this dispatcher won it. The caller
    queues one ``send_delivery`` task per id (and releases the ids it could not queue).

    ``skip_locked`` lets several dispatchers run side by side on PostgreSQL without waiting on
    each other; SQLite has no row locks and serialises writers, so there the select runs
    unlocked and the conditional update alone decides. The bound is checked before the claim,
    so dispatchers claiming at the same instant may pass it by their own few rows."""
    now = timezone.now()
    since = now - timedelta(seconds=settings.WEBHOOKS_QUEUE_LEASE_SECONDS)
    room = settings.WEBHOOKS_MAX_IN_FLIGHT - Delivery.objects.queued(since).count()
    limit = min(limit or settings.WEBHOOKS_DISPATCH_BATCH, room)
    if limit <= 0:
        return []
    with transaction.atomic():
        rows = Delivery.objects.due(now).unqueued(since).select_for_update(skip_locked=True, of=("self",))
        if event_seq is not None:
            rows = rows.filter(event_id=event_seq)
        candidates = list(rows.order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
        claimable = Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now).unqueued(since)
        return [pk for pk in candidates if claimable.filter(pk=pk).update(queued_at=now)]


def deliveries_release(*, ids: list[str]) -> None:
    """Give back claimed rows whose task could not be queued (the broker is down): the next
    dispatcher run queues them, instead of waiting out WEBHOOKS_QUEUE_LEASE_SECONDS."""
    Delivery.objects.filter(pk__in=ids, queued_at__isnull=False).update(queued_at=None)


def _attempt_start(delivery_id: str, now: datetime) -> bool:
    """Move a queued row to "attempt in progress" (leased until now + CLAIM_LEASE), once: a
    second task for the same row (taken for lost and queued again, redelivered by the broker)
    finds it no longer queued, and does nothing."""
    return bool(
        Delivery.objects.filter(
            pk=delivery_id, state=Delivery.State.PENDING, queued_at__isnull=False, next_attempt_at__lte=now
        ).update(queued_at=None, next_attempt_at=now + CLAIM_LEASE)
    )


def _signature(endpoint: Endpoint, msg_id: str, at: datetime, body: str) -> str:
    signatures = [Webhook(endpoint.secret).sign(msg_id, at, body)]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > at:
        signatures.append(Webhook(endpoint.previous_secret).sign(msg_id, at, body))
    return " ".join(signatures)


def delivery_body(event: Event) -> str:
    return json.dumps(
        {"type": event.type, "timestamp": event.created_at.isoformat().replace("+00:00", "Z"), "data": event.payload},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            delay = parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            return None
    return min(max(delay, timedelta(seconds=1)), MAX_RETRY_AFTER)


def next_delay(attempts: int) -> timedelta | None:
    """Delay after ``attempts`` failed attempts, jittered; None when the schedule is spent."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_SCHEDULE[attempts - 1]
    return base + base * (JITTER * random.random())


@dataclass
class Outcome:
    status_code: int | None
    excerpt: str
    latency_ms: int
    error: str
    retry_after: timedelta | None


def _send(endpoint: Endpoint, delivery: Delivery, event: Event, now: datetime) -> Outcome:
    body = delivery_body(event)
    headers = {
        "content-type": "application/json",
        "user-agent": "AssmblMail-Webhooks/1",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": _signature(endpoint, delivery.webhook_id, now, body),
    }
    try:
        response = egress_request("POST", endpoint.url, headers=headers, content=body.encode())
    except UnsafeUrl as exc:
        return Outcome(None, "", 0, f"unsafe_url: {exc}", None)
    except httpx.HTTPError as exc:
        return Outcome(None, "", 0, f"{type(exc).__name__}: {exc}"[:500], None)
    retry_after = None
    if response.status_code in (429, 503):
        retry_after = _retry_after(response.headers.get("retry-after"), now)
    return Outcome(
        response.status_code,
        response.excerpt.decode("utf-8", "replace"),
        response.latency_ms,
        "",
        retry_after,
    )


def delivery_attempt(*, delivery_id: str) -> Delivery | None:
    """Make one attempt of a claimed delivery and record it. The HTTP call runs outside any
    transaction, so a slow receiver never holds a database lock."""
    delivery = Delivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != Delivery.State.PENDING or not delivery.endpoint.enabled:
        deliveries_release(ids=[delivery_id])
        return delivery
    now = timezone.now()
    if not _attempt_start(delivery_id, now):
        return delivery
    delivery.queued_at, delivery.next_attempt_at = None, now + CLAIM_LEASE
    endpoint, event = delivery.endpoint, delivery.event
    outcome = _send(endpoint, delivery, event, now)
    with transaction.atomic():
        delivery.attempts += 1
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            response_excerpt=outcome.excerpt[:1024],
            error=outcome.error[:500],
        )
        delivery.last_status = outcome.status_code
        delivery.last_error = outcome.error[:500]
        delivery.last_attempt_at = now
        status = outcome.status_code
        if status is not None and 200 <= status < 300:
            delivery.state = Delivery.State.SUCCEEDED
            delivery.succeeded_at = now
            delivery.next_attempt_at = None
            Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        elif status == 410:
            # The receiver says the endpoint is gone for good: stop sending to it at all.
            delivery.state = Delivery.State.FAILED
            delivery.next_attempt_at = None
            endpoint_disable(endpoint=endpoint, reason="the receiver answered 410 Gone")
        else:
            delay = outcome.retry_after or next_delay(delivery.attempts)
            if delay is None or delivery.attempts >= MAX_ATTEMPTS:
                delivery.state = Delivery.State.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = now + delay
            _endpoint_failed(endpoint, now)
        delivery.save()
    return delivery


def _endpoint_failed(endpoint: Endpoint, now: datetime) -> None:
    Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
    failing_since = endpoint.failing_since or now
    if now - failing_since >= timedelta(days=settings.WEBHOOKS_DISABLE_AFTER_DAYS):
        endpoint_disable(
            endpoint=endpoint,
            reason=f"failing since {failing_since:%Y-%m-%d %H:%M} UTC ({settings.WEBHOOKS_DISABLE_AFTER_DAYS} days)",
        )


def events_prune(*, batch: int = 5000) -> int:
    """Delete expired events in batches (each its own transaction, so locks stay short)."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOKS_EVENT_RETENTION_DAYS)
    total = 0
    while True:
        with transaction.atomic():
            seqs = list(
                Event.objects.filter(created_at__lt=cutoff).order_by("seq").values_list("seq", flat=True)[:batch]
            )
            if not seqs:
                return total
            Event.objects.filter(seq__in=seqs).delete()
        total += len(seqs)
