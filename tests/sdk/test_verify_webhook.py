"""verify_webhook: the Standard Webhooks spec's test vector, and signatures made by the
``standardwebhooks`` package (the same one the server signs with)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from agentmail_client import AgentMailClient, AsyncAgentMailClient, WebhookVerificationError, verify_webhook

# The test vector of the Standard Webhooks specification (and of its reference libraries).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_headers(signature: str = SPEC_SIGNATURE, timestamp: int = SPEC_TIMESTAMP) -> dict[str, str]:
    return {"webhook-id": SPEC_ID, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_it_verifies_the_spec_test_vector() -> None:
    payload = verify_webhook(SPEC_BODY, spec_headers(), SPEC_SECRET, now=SPEC_TIMESTAMP + 10)

    assert payload == {"test": 2432232314}


def test_it_is_a_static_method_of_both_clients() -> None:
    headers = spec_headers()
    assert AgentMailClient.verify_webhook(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TIMESTAMP) == {"test": 2432232314}
    assert AsyncAgentMailClient.verify_webhook(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TIMESTAMP) is not None


def test_it_accepts_any_matching_signature_of_a_list_and_any_header_case() -> None:
    other = "v1," + base64.b64encode(secrets.token_bytes(32)).decode()
    headers = {
        "Webhook-Id": SPEC_ID,
        "WEBHOOK-TIMESTAMP": str(SPEC_TIMESTAMP),
        "webhook-signature": f"v2,xyz {other} {SPEC_SIGNATURE}",
    }

    assert verify_webhook(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TIMESTAMP) == {"test": 2432232314}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"test": 2432232315}', spec_headers()),
        (SPEC_BODY, spec_headers(signature="v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=")),
        (SPEC_BODY, spec_headers(signature="v2," + SPEC_SIGNATURE[3:])),
        (SPEC_BODY, {**spec_headers(), "webhook-id": "msg_other"}),
        (SPEC_BODY, {"webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}),
        (SPEC_BODY, spec_headers(signature="")),
    ],
    ids=["tampered-body", "tampered-signature", "unknown-version", "other-id", "missing-id", "empty-signature"],
)
def test_it_refuses_what_does_not_verify(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, SPEC_SECRET, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize("skew", [-301, 301])
def test_it_refuses_a_timestamp_outside_five_minutes(skew: int) -> None:
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify_webhook(SPEC_BODY, spec_headers(), SPEC_SECRET, now=SPEC_TIMESTAMP - skew)


@pytest.mark.parametrize("skew", [-299, 299])
def test_it_accepts_a_timestamp_within_five_minutes(skew: int) -> None:
    assert verify_webhook(SPEC_BODY, spec_headers(), SPEC_SECRET, now=SPEC_TIMESTAMP - skew)


def test_it_verifies_what_the_standardwebhooks_package_signs() -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    body = json.dumps({"type": "message.received", "data": {"MessageID": "msg_1", "Subject": "Grüße"}})
    now = datetime.now(tz=UTC)
    signature = Webhook(secret).sign("msg_abc", now, body)

    headers = {"webhook-id": "msg_abc", "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}

    assert verify_webhook(body.encode(), headers, secret)["data"]["Subject"] == "Grüße"
    assert verify_webhook(body, headers, secret)["type"] == "message.received"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())


def test_the_package_verifies_what_sign_webhook_signs() -> None:
    from agentmail_client import sign_webhook

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    ts = int(time.time())
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign_webhook(secret, "msg_x", ts, b"{}"),
    }

    assert Webhook(secret).verify(b"{}", headers) == {}
