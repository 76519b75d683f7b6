"""Email backends of the embedded mode.

``LocalEmailBackend`` (the default, ``MAIL_OUTBOUND=local``) delivers mail for agents of
``MAIL_DOMAIN`` straight into the ingestion pipeline and writes mail for anyone else to
``OUTBOX_DIR`` as .eml files. ``RelayEmailBackend`` (``MAIL_OUTBOUND=smtp``) relays
everything to ``OUTBOUND_SMTP_URL``. Production uses anymail's Amazon SES backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from mail.addresses import address_bare, address_is_local
from mail.ingest import delivery_accept


def _raw_of(email: EmailMessage) -> bytes:
    raw = getattr(email, "raw", None)
    return raw if isinstance(raw, bytes) else email.message().as_bytes()


class LocalEmailBackend(BaseEmailBackend):
    """Agents on this service get the mail through the one ingestion pipeline (source
    ``internal``, authenticated by construction); other domains land in the outbox folder."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for email in email_messages:
            if email.recipients():
                self._send(email)
                sent += 1
        return sent

    def _send(self, email: EmailMessage) -> None:
        raw = _raw_of(email)
        reference = getattr(email, "assmbl_message_id", None) or hashlib.sha256(raw).hexdigest()[:32]
        recipients = [address_bare(r) for r in email.recipients()]
        local = [r for r in recipients if address_is_local(r)]
        external = [r for r in recipients if r not in local]
        envelope_from = address_bare(email.from_email)
        if local:
            # external_id ties the delivery to the outbound message: a retried dispatch
            # finds the delivery it already made instead of making a second one.
            delivery_accept(
                raw=raw,
                source="internal",
                envelope_recipients=local,
                envelope_from=envelope_from,
                external_id=f"internal:{reference}",
                authentication={"internal": True, "spf": "pass", "dkim": "pass", "aligned": True},
            )
        if external:
            self._write_outbox(reference, raw, envelope_from, external)
        email.provider_message_id = f"local:{reference}"  # type: ignore[attr-defined]  # ours, read back by the sender

    def _write_outbox(self, reference: str, raw: bytes, envelope_from: str, recipients: list[str]) -> None:
        outbox = Path(settings.OUTBOX_DIR)
        outbox.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader of the folder never sees half a file. The envelope
        # goes alongside, since Bcc recipients are (rightly) not in the bytes.
        for name, data in (
            (f"{reference}.envelope.json", json.dumps({"from": envelope_from, "to": recipients}).encode()),
            (f"{reference}.eml", raw),
        ):
            tmp = outbox / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, outbox / name)


def smtp_url_params(url: str) -> dict[str, Any]:
    """``smtp://user:pass@host:25``, ``smtp+starttls://...:587`` or ``smtps://...:465``
    → keyword arguments of Django's SMTP backend. ``?timeout=30`` is honoured."""
    parts = urlsplit(url)
    schemes = {"smtp": (25, False, False), "smtp+starttls": (587, True, False), "smtps": (465, False, True)}
    if parts.scheme not in schemes or not parts.hostname:
        raise ImproperlyConfigured(
            f"OUTBOUND_SMTP_URL={url!r}: expected smtp://, smtp+starttls:// or smtps://user:pass@host:port"
        )
    default_port, use_tls, use_ssl = schemes[parts.scheme]
    query = parse_qs(parts.query)
    return {
        "host": parts.hostname,
        "port": parts.port or default_port,
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "use_tls": use_tls,
        "use_ssl": use_ssl,
        "timeout": int(query.get("timeout", ["30"])[0]),
    }


class RelayEmailBackend(SMTPBackend):
    """Django's SMTP backend configured from ``OUTBOUND_SMTP_URL``."""

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        if not settings.OUTBOUND_SMTP_URL:
            raise ImproperlyConfigured("MAIL_OUTBOUND=smtp needs OUTBOUND_SMTP_URL (smtp://user:pass@host:587).")
        super().__init__(fail_silently=fail_silently, **{**smtp_url_params(settings.OUTBOUND_SMTP_URL), **kwargs})

    def open(self) -> bool | None:
        # Greet the relay here rather than in the first sendmail (smtplib's default when
        # neither STARTTLS nor AUTH did already): opening is then everything before MAIL
        # FROM, and mail.dispatch turns its claim into the handoff only after it.
        opened = super().open()
        if opened and self.connection is not None:
            try:
                self.connection.ehlo_or_helo_if_needed()
            except OSError:
                # The socket only: no QUIT to a relay that just failed its greeting.
                connection, self.connection = self.connection, None
                connection.close()
                if not self.fail_silently:
                    raise
                return None
        return opened

    def _send(self, email_message: EmailMessage) -> bool:
        sent = super()._send(email_message)  # type: ignore[misc]  # Django's EmailBackend._send, not in the stubs
        if sent and not getattr(email_message, "provider_message_id", ""):
            raw = _raw_of(email_message)
            from email.parser import BytesHeaderParser

            email_message.provider_message_id = BytesHeaderParser().parsebytes(raw).get("Message-ID", "")  # type: ignore[attr-defined]  # ours, as above
        return bool(sent)
