"""Idempotency of sends, replies and forwards (API.md: Idempotency).

A key is reserved in its own committed transaction before the side effect, so a racing
duplicate sees it; it is completed in the same transaction that creates the message, so a
replay never points at a message that was rolled back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from assmbl import domain
from directory.models import Agent
from mail.models import Message, SendRequest

# Printable ASCII: what an HTTP header carries unchanged through every proxy and WSGI.
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
# A request that crashed between reservation and completion must not hold its key for
# 24 hours: after this long an in-flight reservation is taken over by the next retry.
STALE_RESERVATION = dt.timedelta(minutes=5)


def send_response(message: Message) -> dict[str, str]:
    return {"MessageID": message.id, "Status": message.status}


@dataclass(frozen=True)
class IdempotentResult:
    status: int
    body: dict[str, Any]
    replayed: bool


def idempotency_key_clean(value: str) -> str:
    if not 1 <= len(value) <= 255 or not _PRINTABLE.fullmatch(value):
        raise domain.Invalid("Idempotency-Key must be 1 to 255 printable characters.", code="invalid_idempotency_key")
    return value


def request_hash(*, path: str, data: Any) -> str:
    canonical = json.dumps({"path": path, "body": data}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reserve(*, agent: Agent, key: str, digest: str) -> SendRequest | IdempotentResult:
    now = timezone.now()
    for _ in range(3):
        try:
            # Committed on its own, before the side effect: a racing duplicate sees it.
            with transaction.atomic():
                return SendRequest.objects.create(
                    agent=agent,
                    key=key,
                    request_hash=digest,
                    expires_at=now + dt.timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS),
                )
        except IntegrityError:
            existing = SendRequest.objects.filter(agent=agent, key=key).first()
        if existing is None:
            continue  # purged or released between our insert and our read: try again
        stale_in_flight = (
            existing.state == SendRequest.State.IN_FLIGHT and existing.created_at < now - STALE_RESERVATION
        )
        if existing.expires_at <= now or stale_in_flight:
            # Conditional delete: of two retries that both saw it expired, one wins.
            SendRequest.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        if existing.request_hash != digest:
            raise domain.Conflict(
                "This Idempotency-Key was already used with a different request.",
                code="idempotency_key_reused",
                details={"key": key},
            )
        if existing.state == SendRequest.State.IN_FLIGHT:
            raise domain.Conflict(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                code="idempotency_key_in_use",
                details={"key": key},
            )
        return IdempotentResult(
            status=existing.response_status or 202, body=existing.response_body or {}, replayed=True
        )
    raise domain.Conflict(
        "A request with this Idempotency-Key is still being processed; retry shortly.", code="idempotency_key_in_use"
    )


def send_idempotently(
    *, agent: Agent, key: str | None, path: str, data: Any, perform: Callable[[str], Message]
) -> IdempotentResult:
    """Run ``perform`` (a send, reply or forward) at most once per (agent, key).

    The same key with the same body replays the first response; with another body it is a
    409 ``idempotency_key_reused``; while the first is still running, 409 ``idempotency_key_in_use``.
    A request that fails validation releases its key, so a corrected retry can use it.
    """
    if key is None:
        message = perform("")
        return IdempotentResult(status=202, body=send_response(message), replayed=False)
    key = idempotency_key_clean(key)
    reserved = _reserve(agent=agent, key=key, digest=request_hash(path=path, data=data))
    if isinstance(reserved, IdempotentResult):
        return reserved
    try:
        with transaction.atomic():
            message = perform(key)
            body = send_response(message)
            # Completed in the same transaction that creates the message: either both
            # exist or neither, so a replay never points at a message that was rolled back.
            updated = SendRequest.objects.filter(pk=reserved.pk, state=SendRequest.State.IN_FLIGHT).update(
                state=SendRequest.State.COMPLETED, response_status=202, response_body=body, message=message
            )
            if not updated:
                raise domain.Conflict(
                    "This Idempotency-Key was taken over by another request.", code="idempotency_key_in_use"
                )
    except Exception:
        SendRequest.objects.filter(pk=reserved.pk, state=SendRequest.State.IN_FLIGHT).delete()
        raise
    return IdempotentResult(status=202, body=body, replayed=False)


def send_requests_purge(*, now: dt.datetime | None = None) -> int:
    """Forget idempotency keys older than their 24 hours."""
    deleted, _ = SendRequest.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
