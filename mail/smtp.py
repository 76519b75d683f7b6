"""The local SMTP listener (aiosmtpd): accepts mail for our agents and hands the bytes to
the ingestion pipeline. 250 is sent only after the durable store has committed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections

from directory.services import agent_for_address
from mail.ingest import delivery_accept
from mail.models import InboundDelivery

log = logging.getLogger(__name__)


def _accept(raw: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
    close_old_connections()
    try:
        delivery_accept(
            raw=raw, source=InboundDelivery.Source.SMTP, envelope_from=mail_from, envelope_recipients=rcpt_tos
        )
    finally:
        close_old_connections()


def _known_recipient(address: str) -> bool:
    close_old_connections()
    return agent_for_address(address) is not None


class IngestHandler:
    """aiosmtpd handler. Database work runs in the default executor so the event loop
    keeps serving other sessions while one waits on a write."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, _known_recipient, address):
            return f"550 5.1.1 <{address}>: no such mailbox here"
        if len(envelope.rcpt_tos) >= settings.MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _accept, raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception:
            log.exception("could not store an incoming message")
            return "451 4.3.0 Temporary failure storing the message; try again"
        return "250 2.0.0 OK: queued"


class IngestController(Controller):
    def factory(self) -> SMTP:
        return SMTP(
            self.handler,
            data_size_limit=settings.MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=settings.MAIL_DOMAIN,
            ident="Assmbl Mail",
        )


def smtp_controller(host: str, port: int, **kwargs: Any) -> IngestController:
    return IngestController(IngestHandler(), hostname=host, port=port, **kwargs)
