"""Verify a webhook from Assmbl Mail (Standard Webhooks), without the ``standardwebhooks`` package.

The signature is ``base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}"))``,
where ``key`` is the base64 part of the ``whsec_...`` secret. ``webhook-signature`` is a
space-separated list of ``v1,<signature>`` (several during a secret rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from agentmail_client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Frameworks hand headers over in any case (Django's request.headers, a plain dict, ...).
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        secret = secret[len(SECRET_PREFIX) :]
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("The secret is not a valid whsec_ base64 secret.") from None


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``v1,<signature>`` value for a payload (useful to test a receiver)."""
    payload = body.encode() if isinstance(body, str) else body
    to_sign = f"{msg_id}.{timestamp}.".encode() + payload
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a delivery and return its parsed JSON payload.

    ``body`` must be the raw request body, byte for byte (not re-serialised JSON).
    Raises ``WebhookVerificationError`` when a header is missing, the timestamp is more than
    ``tolerance`` seconds away from now (a replay), or no ``v1`` signature matches.
    """
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature header.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("Invalid webhook-timestamp header.") from None
    current = time.time() if now is None else now
    if sent_at < current - tolerance:
        raise WebhookVerificationError("Message timestamp too old.")
    if sent_at > current + tolerance:
        raise WebhookVerificationError("Message timestamp too new.")
    expected = sign_webhook(secret, msg_id, sent_at, body).split(",", 1)[1].encode()
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        # Compare every candidate in constant time; unknown versions are skipped, not errors.
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return json.loads(body)
    raise WebhookVerificationError("No matching signature found.")
