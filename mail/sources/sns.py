"""Amazon SNS message signature verification, shared by the HTTPS webhook and the SQS
consumer (SNS-wrapped notifications).

Order matters: everything that can be checked without the network (message type, signature
version, topic allow-list, the exact shape of SigningCertURL) is checked *before* the
certificate is fetched, so a forged message never makes us open a connection.

https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

# The fields each message type signs, in the order AWS concatenates them.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
# Optional in a Notification only: absent means "not part of the string", not "empty".
OPTIONAL_FIELDS = frozenset({"Subject"})
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

# Host must be exactly sns.<region>.amazonaws.com (or .com.cn): no suffix tricks
# (sns.x.amazonaws.com.evil.com), no userinfo, no port.
_SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?")
CERT_CACHE_SECONDS = 24 * 3600

Fetcher = Callable[[str], bytes]


class SnsVerificationError(Exception):
    """The message is not a genuine SNS message for one of our topics."""


def sns_fetcher() -> Fetcher:
    """The one callable that fetches SNS URLs (certificates, SubscribeURL).
    ``SES_SNS_FETCHER`` names it, so tests inject one that counts calls."""
    fetcher: Fetcher = import_string(settings.SES_SNS_FETCHER)
    return fetcher


def url_fetch(url: str) -> bytes:
    """Default fetcher: HTTPS GET with a short timeout and no redirects (a redirect could
    leave amazonaws.com after we checked the host)."""
    import httpx

    response = httpx.get(url, timeout=5.0, follow_redirects=False)
    response.raise_for_status()
    return response.content


def sns_url_valid(url: str, *, path_suffix: str = "") -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (
        parts.scheme == "https"
        and parts.username is None
        and parts.password is None
        and port is None
        and "@" not in parts.netloc
        and ":" not in parts.netloc
        and bool(_SNS_HOST.fullmatch(parts.netloc))
        and parts.path.startswith("/")
        and (not path_suffix or parts.path.endswith(path_suffix))
        and (not path_suffix or (parts.query == "" and parts.fragment == ""))
    )


def canonical_string(message: Mapping[str, Any]) -> bytes:
    fields = SIGNED_FIELDS[str(message.get("Type"))]
    lines: list[str] = []
    for name in fields:
        if name in OPTIONAL_FIELDS and message.get(name) is None:
            continue
        value = message.get(name)
        if not isinstance(value, str):
            raise SnsVerificationError(f"missing signed field {name}")
        lines += [name, value]
    return ("\n".join(lines) + "\n").encode()


def _certificate(url: str) -> x509.Certificate:
    key = "sns-cert:" + hashlib.sha256(url.encode()).hexdigest()
    pem = cache.get(key)
    if pem is None:
        pem = sns_fetcher()(url)
        x509.load_pem_x509_certificate(pem)  # don't cache garbage
        cache.set(key, pem, CERT_CACHE_SECONDS)
    return x509.load_pem_x509_certificate(pem)


def sns_message_verify(message: Mapping[str, Any], *, topic_arns: list[str] | None = None) -> None:
    """Raise SnsVerificationError unless ``message`` is signed by SNS for an allowed topic."""
    allowed = settings.SES_SNS_TOPIC_ARNS if topic_arns is None else topic_arns
    msg_type = message.get("Type")
    if msg_type not in SIGNED_FIELDS:
        raise SnsVerificationError(f"unknown SNS message type {msg_type!r}")
    version = message.get("SignatureVersion")
    if version not in HASHES:
        raise SnsVerificationError(f"unknown SignatureVersion {version!r}")
    if message.get("TopicArn") not in allowed:
        raise SnsVerificationError(f"topic {message.get('TopicArn')!r} is not in SES_SNS_TOPIC_ARNS")
    cert_url = message.get("SigningCertURL") or message.get("SigningCertUrl")
    if not isinstance(cert_url, str) or not sns_url_valid(cert_url, path_suffix=".pem"):
        raise SnsVerificationError(f"SigningCertURL {cert_url!r} is not an SNS certificate URL")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except ValueError as err:
        raise SnsVerificationError("Signature is not base64") from err
    data = canonical_string(message)
    public_key = _certificate(cert_url).public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SnsVerificationError("SNS certificate key is not RSA")
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), HASHES[str(version)]())
    except InvalidSignature as err:
        raise SnsVerificationError("bad SNS signature") from err


def sns_subscription_confirm(message: Mapping[str, Any]) -> None:
    """Visit SubscribeURL of a verified SubscriptionConfirmation for an allowed topic."""
    url = str(message.get("SubscribeURL", ""))
    if not sns_url_valid(url):
        raise SnsVerificationError(f"SubscribeURL {url!r} is not an SNS URL")
    sns_fetcher()(url)
