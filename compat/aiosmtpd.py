"""aiosmtpd, where the listener (mail/smtp.py) needs more than its public extension points.

The listener uses the public ones directly: handler hooks (``handle_RCPT``,
``handle_DATA``, ``handle_MAIL`` and the five-argument ``handle_EHLO``, which must record
``session.host_name`` themselves, ``handle_exception``), ``auth_*`` mechanisms on a handler
with ``SMTP.challenge_auth`` and ``AuthResult``, ``Session.ssl`` and
``Session.auth_data``, the constructor's documented arguments (``tls_context``,
``require_starttls``, ``auth_required``, ``command_call_limit``), ``SMTP.push`` (wrapped to
add enhanced status codes), ``smtp_HELO``/``smtp_EHLO`` (wrapped, as command methods),
``check_helo_needed``/``check_auth_needed``, the asyncio protocol methods
(``connection_made``/``connection_lost``) and ``Controller.factory``. What remains needs
aiosmtpd's internals and is here, each override with its reason:

``SMTP``
- ``smtp_DATA`` (a command method, the documented way to redefine a command) is aiosmtpd's
  own, with the same answers, except that the message is read by ``data_read`` (for the
  listener, ``mail.smtp_data``: a few large reads instead of a line at a time) and the
  handler is called through ``data_handle``. It reads aiosmtpd's private stream reader
  and writer (``_reader``, ``_writer``), resets the transaction with
  ``_set_post_data_state`` and calls the handler with ``_call_handler_hook``, as
  aiosmtpd's ``smtp_DATA`` does; ``decode_data`` reads ``_decode_data``.
- ``smtp_BDAT`` (a command method, as ``smtp_DATA``): CHUNKING (RFC 3030), which aiosmtpd
  lacks. It reads each chunk's octets from ``_reader`` and ends the transaction as
  ``smtp_DATA`` does (``data_handle``, ``_set_post_data_state``); the chunks are kept for
  the envelope they belong to, so RSET or a finished transaction drops them. ``smtp_DATA``
  refuses DATA once chunks have been received (RFC 3030 section 3).
- ``_getaddr`` (MAIL and RCPT paths): aiosmtpd parses every path with the email
  package's RFC 5322 tokenizer, a tenth of the listener's event loop; a plain
  ``<local@domain>`` gets the same answer from a regex, anything else goes to aiosmtpd's.
- ``line_length_limit`` (a class attribute) sizes the stream reader; a subclass may raise
  it when its ``data_read`` checks line lengths itself (commands are still held to
  ``command_size_limits``).

``Controller``
- ``reuse_port``: ``_create_server`` and ``_trigger_server``, the two methods aiosmtpd's
  ``BaseController`` documents as the ones a subclass overrides to change how the server
  is created and first connected, with ``_factory_invoker`` as what ``create_server``
  must call.

Re-check all of the above on an aiosmtpd upgrade, then add the version to
``CHECKED_VERSIONS`` (tests/compat/test_aiosmtpd.py fails until then). Differential tests,
ours against stock aiosmtpd over real sockets or on the same input:
tests/mail/test_smtp_data.py (DATA), tests/mail/test_smtp_paths.py (paths) and
tests/compat/test_aiosmtpd.py (a whole conversation); ``make compat-check`` runs them with
the listener's crash test.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiosmtpd import controller as _controller
from aiosmtpd import smtp as _smtp

CHECKED_VERSIONS = ("1.4.6",)

MISSING = _smtp.MISSING

log = logging.getLogger(__name__)

# The path nearly every client sends in MAIL and RCPT: <dot-atom@dot-atom>, then parameters.
PLAIN_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
)


# "BDAT <chunk-size> [LAST]" (RFC 3030 section 2); a size beyond 19 digits is refused.
BDAT_ARG = re.compile(r"([0-9]{1,19})(?: +(LAST))?", re.IGNORECASE)
# Octets of a chunk read at a time when they are read only to be discarded.
DISCARD_PIECE = 1 << 16


class SMTP(_smtp.SMTP):
    """aiosmtpd's session with DATA read by ``data_read`` and plain paths parsed fast.
    Bytes only: the message is handed over as read (``decode_data=False``)."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        # The BDAT chunks of the transaction of ``_chunked``, and the refusal that ended it.
        self._chunked: _smtp.Envelope | None = None
        self._chunks: list[bytes] = []
        self._chunks_refusal = ""
        if self.decode_data:
            raise ValueError(f"{type(self).__name__} hands the message over as bytes: decode_data must be False")

    @property
    def decode_data(self) -> bool:
        return bool(self._decode_data)

    async def data_read(self, reader: asyncio.StreamReader, size_limit: int | None) -> tuple[bytes, str]:
        """The message up to the line ``.``, dot-unstuffed: ``(content, "")``, or
        ``(b"", refusal)`` once the whole section has been read. Subclasses provide it."""
        raise NotImplementedError

    async def data_handle(self) -> Any:
        """The handler's answer to the message now in ``self.envelope`` (its
        ``handle_DATA``), or ``MISSING``. Subclasses may wrap it."""
        return await self._call_handler_hook("DATA")

    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd's smtp_DATA (1.4.6), with the read loop replaced by data_read; the
        # answers before and after it are its own, in its order.
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if self._chunked is self.envelope:
            await self.push("503 Error: DATA after BDAT")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, refusal = await self.data_read(self._reader, self.data_size_limit)
        except asyncio.CancelledError:
            # The connection was lost during DATA (aiosmtpd's eof_received cancels us).
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        if refusal:
            await self.push(refusal)
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self.data_handle()
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
        await self.push("250 OK" if status is MISSING else status)

    def chunks_refusal(self, content: bytes) -> str:
        """The refusal of a message received in BDAT chunks (``content``, whole), or "".
        Subclasses may check what ``data_read`` checks in DATA."""
        return ""

    async def smtp_BDAT(self, arg: str) -> None:
        match = BDAT_ARG.fullmatch(arg.strip())
        if match is None:
            # Where the chunk ends is unknown, so nothing after it can be read as a command.
            await self.push("501 Syntax: BDAT <size> [LAST]")
            self._writer.close()
            return
        size, last = int(match[1]), match[2] is not None
        ongoing = self._chunked is self.envelope
        held = sum(map(len, self._chunks)) if ongoing else 0
        refused = self._chunks_refusal if ongoing else ""
        keep = not refused and not (self.data_size_limit and held + size > self.data_size_limit)
        # The chunk's octets are read whatever the answer: they are not commands.
        try:
            chunk = await self._bdat_read(size, keep)
        except asyncio.IncompleteReadError:
            log.info("connection lost during BDAT")
            self._writer.close()
            return
        if await self.check_helo_needed() or await self.check_auth_needed("BDAT"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if not ongoing:
            self._chunked, self._chunks, self._chunks_refusal = self.envelope, [], ""
        if not keep:
            # The transaction has failed (RFC 3030 section 2): its later chunks are read and
            # refused alike, and LAST ends it.
            self._chunks_refusal = self._chunks_refusal or "552 Error: Too much mail data"
        if chunk:  # "BDAT 0" over and over holds nothing
            self._chunks.append(chunk)
        if not last:
            await self.push(self._chunks_refusal or f"250 OK: {size} octets received")
            return
        content = b"".join(self._chunks)
        self._chunks = []
        refusal = self._chunks_refusal or self.chunks_refusal(content)
        if refusal:
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
            await self.push(refusal)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self.data_handle()
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
        await self.push("250 OK" if status is MISSING else status)

    async def _bdat_read(self, size: int, keep: bool) -> bytes:
        if keep:
            return await self._reader.readexactly(size)
        while size:
            piece = min(size, DISCARD_PIECE)
            await self._reader.readexactly(piece)
            size -= piece
        return b""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's _getaddr, for the plain path without its tokenizer (and the class it
        # builds per call); tests/mail/test_smtp_paths.py compares both.
        match = PLAIN_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        address, rest = match.group(1), arg[match.end() :]
        if rest[:1] in (" ", "\t", "("):
            rest = rest.lstrip()  # the whitespace after ">" belongs to the path
            if rest.startswith("("):
                return super()._getaddr(arg)  # and so does a comment
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest


class Controller(_controller.Controller):
    """aiosmtpd's controller, with ``reuse_port``: several listener processes share the
    port (``SO_REUSEPORT``), the kernel spreading connections over them."""

    def __init__(self, handler: Any, *, reuse_port: bool = False, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.reuse_port = reuse_port

    def _create_server(self) -> Any:
        if not self.reuse_port:
            return super()._create_server()
        return self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context, reuse_port=True
        )

    def _trigger_server(self) -> None:
        if not self.reuse_port:
            super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
            return
        # aiosmtpd connects to its own port to check that the server builds; with a shared
        # port that connection may reach a sibling process, so build it on our loop instead.
        self.loop.call_soon_threadsafe(self._factory_invoker)
