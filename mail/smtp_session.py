"""The listener's SMTP session, on either port: aiosmtpd's, with the message of DATA read
in a few large reads and its lines up to ``SMTP_MAX_LINE_BYTES`` (``mail.smtp_data``), an
enhanced status code on every reply (``mail.smtp_replies``), PIPELINING, STARTTLS when a
certificate is configured (``mail.smtp_tls``), a cap on the sessions of one address and a
deadline on each. The receiving port's handler and controller are ``mail.smtp``; the
submission port's ``mail.smtp_submission``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings

from compat import aiosmtpd
from mail.authn import peer_trusted
from mail.smtp_data import READ_LIMIT, content_refusal, data_read
from mail.smtp_replies import reply_enhanced
from mail.smtp_tls import ServerTls

log = logging.getLogger(__name__)

REPLY_SENDER_OK = "250 2.1.0 OK"
REPLY_RECIPIENT_OK = "250 2.1.5 OK"
REPLY_INTERNAL_ERROR = "451 4.3.0 Internal error; try again later"
REPLY_TOO_MANY_SESSIONS = "421 4.7.0 Too many connections from your address"
REPLY_DEADLINE = "421 4.4.2 Session time limit exceeded; closing"


class PeerSessions:
    """The open sessions of each client address in one listener, for
    ``SMTP_MAX_SESSIONS_PER_IP``. Used on the event loop only, so it needs no lock."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def admit(self, ip: str) -> bool:
        """Count a new session from ``ip``; False (and not counted) when it is one too many."""
        limit = settings.SMTP_MAX_SESSIONS_PER_IP
        if limit and self._open[ip] >= limit and not peer_trusted(ip):
            return False
        self._open[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]

    def count(self, ip: str) -> int:
        return self._open[ip]


class ListenerHandler:
    """What every handler of the listener's sessions answers alike: the extensions EHLO
    offers beyond aiosmtpd's own, MAIL with its enhanced code, and a bug in a hook as a
    temporary failure. Subclasses add ``handle_RCPT`` and ``handle_DATA``, and set
    ``offers_auth`` when their port authenticates (aiosmtpd offers AUTH on any port once
    in TLS)."""

    offers_auth = False

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # With this (five-argument) hook aiosmtpd leaves recording the name to it.
        session.host_name = hostname
        # Commands are read and answered one after another from the stream, so a client
        # may send a group of them at once (RFC 2920); every reply has its enhanced code
        # (``IngestSMTP.push``). BDAT chunks (RFC 3030) are read by ``compat.aiosmtpd.SMTP``.
        offered = [line for line in responses[:-1] if self.offers_auth or not line.startswith("250-AUTH")]
        return [*offered, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # With this hook aiosmtpd leaves recording the sender to it.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return REPLY_SENDER_OK

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd answers a hook that raised "500 Error: (...)": a permanent refusal, which
        # makes the sender bounce a mail that a retry would have delivered.
        log.error("SMTP session error", exc_info=error)
        return REPLY_INTERNAL_ERROR


class IngestSMTP(aiosmtpd.SMTP):
    """aiosmtpd's session (as adapted in ``compat.aiosmtpd``: a shortcut for the plain paths
    of MAIL and RCPT), with the message of DATA read in a few large reads
    (``mail.smtp_data``) instead of a line at a time. The session reads bytes
    (``decode_data=False``) for a handler with ``handle_DATA``.

    Two bounds on a session: ``peers`` (the listener's ``PeerSessions``) refuses a
    connection from an address that already holds ``SMTP_MAX_SESSIONS_PER_IP``, and
    ``SMTP_SESSION_DEADLINE`` ends a session that lasts longer, however busy it keeps."""

    # aiosmtpd sizes the stream reader by its longest DATA line; ``data_read`` checks line
    # lengths itself, and commands are still held to ``command_size_limits``.
    line_length_limit = READ_LIMIT

    def __init__(self, handler: Any, *, peers: PeerSessions | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.peers = peers
        self.max_line_bytes: int = settings.SMTP_MAX_LINE_BYTES
        self.peer_ip: str | None = None  # set once the session is admitted and counted
        self.deadline_handle: asyncio.TimerHandle | None = None
        self.deadline_passed = False
        self.storing = False  # between the end of DATA and its answer
        # The greeting and the replies to HELO/EHLO carry no enhanced code (RFC 2034 3).
        self.greeted = False
        self.replies_plain = False  # while HELO or EHLO answers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.peer_ip is not None:  # STARTTLS: the same session on a new transport
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) else ""
        if self.peers is not None and not self.peers.admit(ip):
            # Refused before aiosmtpd starts the session (no 220): RFC 5321 3.1 allows a
            # 421 greeting, after which the client quits and tries again later.
            log.warning("refused a session from %s: %d already open", ip, self.peers.count(ip))
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(f"{REPLY_TOO_MANY_SESSIONS}\r\n".encode())
            transport.close()
            return
        self.peer_ip = ip
        super().connection_made(transport)
        if settings.SMTP_SESSION_DEADLINE:
            self.deadline_handle = self.loop.call_later(settings.SMTP_SESSION_DEADLINE, self._deadline_reached)

    def connection_lost(self, error: Exception | None) -> None:
        if self.peer_ip is None:
            return  # refused in connection_made: there is no session to end
        if self.deadline_handle is not None:
            self.deadline_handle.cancel()
            self.deadline_handle = None
        if self.peers is not None:
            self.peers.release(self.peer_ip)
            self.peers = None  # released once, whatever calls follow
        super().connection_lost(error)

    def _deadline_reached(self) -> None:
        self.deadline_passed = True
        if not self.storing:
            self._deadline_close()
        # Otherwise a mail is being checked and committed, and cutting the session now could
        # leave it stored but unanswered (sent again by the client): smtp_DATA answers it,
        # then closes.

    def _deadline_close(self) -> None:
        """421 and close. A DATA still being read is cut: nothing of it was handed over."""
        if self.transport is None or self.transport.is_closing():
            return
        log.info("%r session deadline reached", self.session.peer if self.session else None)
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(f"{REPLY_DEADLINE}\r\n".encode())
        self.transport.close()

    async def push(self, status: str | bytes) -> None:
        """Every reply, with its enhanced status code (``mail.smtp_replies``)."""
        plain = (self.replies_plain or not self.greeted) and status[:1] in ("2", b"2")
        self.greeted = True
        if isinstance(status, str):
            await super().push(status if plain else reply_enhanced(status))
        else:  # only AUTH's challenges (334), which carry no enhanced code
            await super().push(status)

    async def smtp_HELO(self, hostname: str) -> None:
        self.replies_plain = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self.replies_plain = False

    async def smtp_EHLO(self, hostname: str) -> None:
        self.replies_plain = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self.replies_plain = False

    async def data_read(self, reader: asyncio.StreamReader, size_limit: int | None) -> tuple[bytes, str]:
        # The line limit as aiosmtpd counts it: with the CRLF.
        return await data_read(reader, size_limit, self.max_line_bytes + 2)

    def chunks_refusal(self, content: bytes) -> str:
        return content_refusal(content, self.max_line_bytes + 2)

    async def data_handle(self) -> Any:
        self.storing = True
        try:
            return await super().data_handle()
        finally:
            self.storing = False
            if self.deadline_passed:
                # After the answer smtp_DATA then writes (before this session's task next
                # yields), or after aiosmtpd's reply to a hook that raised.
                self.loop.call_soon(self._deadline_close)


class ListenerController(aiosmtpd.Controller):
    """A port of the listener. ``reuse_port`` (``compat.aiosmtpd.Controller``): several
    listener processes share the port, the kernel spreading connections over them. One
    Python process gets at most one core; ``serve --stack`` runs ``SMTP_LISTENERS`` of them.
    Subclasses build the session in ``factory`` with ``session_options``."""

    def __init__(self, handler: Any, *, tls: ServerTls | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.peers = PeerSessions()
        # STARTTLS when a certificate is configured; ``tls.reload()`` (SIGHUP) swaps the
        # context that new sessions get.
        self.tls = tls if tls is not None else ServerTls()

    def start(self) -> None:
        self.peers = PeerSessions()  # a restarted listener owes nothing to its old sessions
        super().start()

    def session_options(self) -> dict[str, Any]:
        """What every session of the listener is built with, on either port."""
        return {
            "data_size_limit": settings.MAX_MESSAGE_BYTES,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "hostname": settings.MAIL_DOMAIN,
            "peers": self.peers,
            "tls_context": self.tls.context,
        }
