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

from directory.authn import authentication_check, header_from_address
from directory.services import agent_for_address
from directory.trust import sender_blocked
from mail.ingest import delivery_accept
from mail.models import InboundDelivery

log = logging.getLogger(__name__)


def _accept(raw: bytes, mail_from: str, rcpt_tos: list[str], peer_ip: str = "", helo: str = "") -> str:
    """Refuse (550) when the header From is blocked by every recipient; otherwise check SPF
    and DKIM (DNS with short timeouts; this runs in an executor thread) and store."""
    close_old_connections()
    try:
        header_from = header_from_address(raw)
        if header_from:
            reasons = [_blocked_reason(rcpt, header_from) for rcpt in rcpt_tos]
            if reasons and all(reasons):
                return f"550 5.7.1 {reasons[0]}"
        authentication = authentication_check(raw=raw, peer_ip=peer_ip, helo=helo, mail_from=mail_from)
        delivery_accept(
            raw=raw,
            source=InboundDelivery.Source.SMTP,
            envelope_from=mail_from,
            envelope_recipients=rcpt_tos,
            authentication=authentication,
        )
        return "250 2.0.0 OK: queued"
    finally:
        close_old_connections()


def _blocked_reason(address: str, sender: str) -> str:
    agent = agent_for_address(address)
    return sender_blocked(agent=agent, sender=sender) if agent is not None else ""


def _rcpt_check(address: str, mail_from: str) -> str:
    """The refusal for one RCPT TO, or "" to accept it."""
    close_old_connections()
    agent = agent_for_address(address)
    if agent is None:
        return f"550 5.1.1 <{address}>: no such mailbox here"
    # MAIL FROM can differ from the header From; DATA checks that one too.
    reason = sender_blocked(agent=agent, sender=mail_from) if mail_from else ""
    return f"550 5.7.1 {reason}" if reason else ""


class IngestHandler:
    """aiosmtpd handler. Database work runs in the default executor so the event loop
    keeps serving other sessions while one waits on a write."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        loop = asyncio.get_running_loop()
        try:
            refusal = await loop.run_in_executor(None, _rcpt_check, address, envelope.mail_from or "")
        except Exception:
            # The database is down (restart, failover): a 5xx here would make the sender
            # bounce the mail; a 4xx makes it retry later, as RFC 5321 intends.
            log.exception("could not look up recipient %s", address)
            return "451 4.3.0 Temporary failure looking up the recipient; try again"
        if refusal:
            return refusal
        if len(envelope.rcpt_tos) >= settings.MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        peer_ip = session.peer[0] if isinstance(session.peer, tuple) else ""
        try:
            return await loop.run_in_executor(
                None, _accept, raw, envelope.mail_from or "", list(envelope.rcpt_tos), peer_ip, session.host_name or ""
            )
        except Exception:
            log.exception("could not store an incoming message")
            return "451 4.3.0 Temporary failure storing the message; try again"


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
