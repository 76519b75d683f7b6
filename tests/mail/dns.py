"""Offline DNS for the trust and authentication tests, and a DKIM key pair made once per
session (fixtures registered by tests/mail/conftest.py)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mail.authn import DnsTemporaryError


@dataclass
class FakeDNS:
    """The resolver ``TRUST_DNS_RESOLVER`` points at in tests: answers from a dict."""

    records: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, name: str, qtype: str) -> list[Any]:
        name = name.lower().rstrip(".")
        self.queries.append((name, qtype))
        if name in self.failing:
            raise DnsTemporaryError(f"timeout for {name}")
        return list(self.records.get((name, qtype), []))

    def add(self, name: str, qtype: str, *values: Any) -> None:
        self.records.setdefault((name.lower(), qtype), []).extend(values)


@pytest.fixture
def fake_dns(settings: Any) -> FakeDNS:
    resolver = FakeDNS()
    settings.TRUST_DNS_RESOLVER = resolver
    return resolver


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    public_txt: str

    def sign(self, raw: bytes, *, domain: str, selector: str = "s1", oversign_from: bool = True) -> bytes:
        signer = dkim.DKIM(raw)
        if not oversign_from:
            # As signers that do not oversign From do: a From added above still verifies.
            signer.frozen_sign = set()
        header = signer.sign(
            selector.encode(),
            domain.encode(),
            self.private_pem,
            include_headers=[b"from", b"to", b"subject", b"message-id"],
        )
        return header + raw


@pytest.fixture(scope="session")
def dkim_key() -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(private_pem=pem, public_txt=f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}")


@pytest.fixture
def signed_by(fake_dns: FakeDNS, dkim_key: DkimKey) -> Callable[..., bytes]:
    """Sign raw bytes for a domain and publish its key in the fake DNS."""

    def _sign(raw: bytes, domain: str, selector: str = "s1", oversign_from: bool = True) -> bytes:
        fake_dns.add(f"{selector}._domainkey.{domain}", "TXT", dkim_key.public_txt)
        return dkim_key.sign(raw, domain=domain, selector=selector, oversign_from=oversign_from)

    return _sign
