"""Sign SNS messages the way SNS does, with a self-signed certificate served by a fake
fetcher that counts its calls. Written from the AWS documentation, independently of
``mail.sources.sns``, so a canonicalisation bug there fails the tests."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC = "arn:aws:sns:us-east-1:123456789012:assmbl-inbound"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"

_FIELDS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
    "UnsubscribeConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}


@dataclass
class FakeFetcher:
    """What SES_SNS_FETCHER points at in tests: serves our certificate, records every URL."""

    pem: bytes = b""
    calls: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url.endswith(".pem"):
            return self.pem
        return b"<ConfirmSubscriptionResponse/>"


FETCHER = FakeFetcher()


def fetch(url: str) -> bytes:
    return FETCHER(url)


@dataclass
class Signer:
    key: rsa.RSAPrivateKey
    pem: bytes

    @classmethod
    def create(cls) -> Signer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, pem=cert.public_bytes(serialization.Encoding.PEM))

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        text = ""
        for name in _FIELDS[message["Type"]]:
            if name in message:
                text += f"{name}\n{message[name]}\n"
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), algorithm)
        return {**message, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode()}


def ses_notification(
    *,
    message_id: str,
    recipients: list[str],
    bucket: str = "assmbl-mail",
    object_key: str | None = None,
    source: str = "alice@example.com",
    verdicts: dict[str, str] | None = None,
    content: bytes | None = None,
) -> dict[str, Any]:
    """An SES receipt notification: S3 action (the object SES wrote), or SNS action with
    the content inline when ``content`` is given."""
    verdicts = {"spf": "PASS", "dkim": "PASS", "dmarc": "PASS", "spam": "PASS", "virus": "PASS", **(verdicts or {})}
    action: dict[str, Any] = {
        "type": "S3",
        "topicArn": TOPIC,
        "bucketName": bucket,
        "objectKey": object_key or f"raw/{message_id}",
    }
    extra: dict[str, Any] = {}
    if content is not None:
        action = {"type": "SNS", "topicArn": TOPIC, "encoding": "BASE64"}
        extra = {"content": base64.b64encode(content).decode()}
    return {
        **extra,
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-11-24T12:00:00.000Z",
            "source": source,
            "messageId": message_id,
            "destination": recipients,
        },
        "receipt": {
            "timestamp": "2026-11-24T12:00:00.000Z",
            "processingTimeMillis": 310,
            "recipients": recipients,
            "spamVerdict": {"status": verdicts["spam"]},
            "virusVerdict": {"status": verdicts["virus"]},
            "spfVerdict": {"status": verdicts["spf"]},
            "dkimVerdict": {"status": verdicts["dkim"]},
            "dmarcVerdict": {"status": verdicts["dmarc"]},
            "action": action,
        },
    }


def sns_notification(notification: dict[str, Any] | str, *, topic: str = TOPIC) -> dict[str, Any]:
    """An unsigned SNS Notification envelope around an SES notification."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": notification if isinstance(notification, str) else json.dumps(notification),
        "Timestamp": "2026-11-24T12:00:00.500Z",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    }


def sns_subscription(*, topic: str = TOPIC) -> dict[str, Any]:
    token = uuid.uuid4().hex
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.",
        "SubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}&Token={token}",
        "Timestamp": "2026-11-24T12:00:00.500Z",
        "SigningCertURL": CERT_URL,
    }


def sns_post_kwargs(message: dict[str, Any]) -> dict[str, Any]:
    """Django test client kwargs for what SNS POSTs (text/plain JSON plus its headers)."""
    return {
        "data": json.dumps(message),
        "content_type": "text/plain; charset=UTF-8",
        "headers": {
            "x-amz-sns-message-type": str(message.get("Type")),
            "x-amz-sns-message-id": str(message.get("MessageId")),
            "x-amz-sns-topic-arn": str(message.get("TopicArn")),
        },
    }
