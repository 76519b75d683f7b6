"""STARTTLS for the SMTP listener (RFC 3207): the certificate, its reload, a self-signed
pair for development, and the ``Received`` header that records how a mail came in.

The certificate and key are PEM files named by ``SMTP_TLS_CERT`` and ``SMTP_TLS_KEY``.
A listener reads them at start and again on SIGHUP (``ServerTls.reload``): a renewed
certificate (certbot, a mounted secret) is taken without dropping a session; sessions
already in TLS keep the one they started with. Without them the listener offers no
STARTTLS, and the submission port refuses AUTH (which needs TLS).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import ssl
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)

SELF_SIGNED_CERT = "smtp-tls.crt"
SELF_SIGNED_KEY = "smtp-tls.key"
# What the HELO name may contribute to a header: no spaces, parentheses or controls.
_HELO_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x7e]")


def tls_context_load(cert: str, key: str) -> ssl.SSLContext:
    """A server context for ``cert`` (PEM, the chain after the leaf) and ``key``. Raises
    ``OSError``/``ssl.SSLError`` when they are missing or do not match."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class ServerTls:
    """The context every new session of a listener is given (``None``: no STARTTLS)."""

    def __init__(self, cert: str | None = None, key: str | None = None) -> None:
        self.cert = settings.SMTP_TLS_CERT if cert is None else cert
        self.key = (settings.SMTP_TLS_KEY or self.cert) if key is None else key
        self.context: ssl.SSLContext | None = None
        if self.cert:
            self.context = tls_context_load(self.cert, self.key)

    def reload(self) -> bool:
        """Read the files again; on failure keep the context in use and log why."""
        if not self.cert:
            return False
        try:
            self.context = tls_context_load(self.cert, self.key)
        except (OSError, ssl.SSLError):
            log.exception("could not reload the TLS certificate %s; keeping the one in use", self.cert)
            return False
        log.info("reloaded the TLS certificate %s", self.cert)
        return True


def self_signed_ensure(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``hostname`` in ``directory``, made on first
    use (development: ``make run``). A sending MTA accepts it for STARTTLS, as
    opportunistic TLS does not verify the server."""
    cert_path, key_path = directory / SELF_SIGNED_CERT, directory / SELF_SIGNED_KEY
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(hostname),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def tls_description(ssl_info: dict[str, Any] | None) -> str:
    """``using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)``, as Postfix
    writes it, for a session's ``Session.ssl`` (aiosmtpd's record of the handshake); ""
    for a session in clear text."""
    if not ssl_info:
        return ""
    cipher = ssl_info.get("cipher")
    ssl_object = ssl_info.get("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    if not cipher:
        return f"using {version or 'TLS'}"
    name, protocol, bits = cipher
    return f"using {version or protocol} with cipher {name} ({bits}/{bits} bits)"


def received_header(*, helo: str, peer_ip: str, tls: str, protocol: str) -> bytes:
    """The trace header (RFC 5321 4.4) the listener prepends to a mail it received over TLS,
    in the form MTAs write it, so the TLS version and cipher travel with the mail."""
    helo = _HELO_UNSAFE.sub("?", helo)[:255] or "unknown"
    when = format_datetime(timezone.now())
    lines = [
        f"Received: from {helo} ([{peer_ip}])",
        f"\t({tls})" if tls else "",
        f"\tby {settings.MAIL_DOMAIN} (Assmbl Mail) with {protocol};",
        f"\t{when}",
    ]
    return "\r\n".join(line for line in lines if line).encode("ascii", "replace") + b"\r\n"


_OUR_RECEIVED = re.compile(
    rb"Received: from [^\r\n]*\r\n\t\((using [^\r\n]*)\)\r\n\tby [^\r\n]* \(Assmbl Mail\) with (ESMTPSA?);"
)


def received_transport(head: bytes) -> str:
    """How a stored mail reached the listener, from the ``Received`` header it prepended
    (``head``: the first bytes of the mail): "ESMTPS using TLSv1.3 with cipher ...", or ""
    when the mail does not begin with one (clear text, or another source)."""
    match = _OUR_RECEIVED.match(head)
    return f"{match[2].decode()} {match[1].decode('ascii', 'replace')}" if match else ""
