"""Authenticated submission for agents (RFC 6409) on ``SUBMISSION_PORT``: most software that
sends mail speaks SMTP, so an agent may send through it as through ``POST /v1/send``.

- **STARTTLS first.** Every command but EHLO, NOOP, STARTTLS and QUIT is refused with
  ``530 5.7.0`` until the session is encrypted (RFC 3207), AUTH included.
- **AUTH PLAIN or LOGIN**: the user is the agent's address, the password one of its API
  tokens, looked up in the same token store (a revoked token, or a deactivated agent,
  fails with ``535 5.7.8``). MAIL before AUTH: ``530 5.7.0``.
- **MAIL FROM** must be the agent's address (``553 5.7.1`` otherwise).
- **DATA** goes through the API's path and nothing else: the message is read into the
  fields of ``POST /v1/send`` (``SendInput``; its attached parts become the agent's
  uploads, ``attachment_store``), checked as the API checks them, and sent by
  ``message_send`` (policy, approval, quotas, suppression, loop breaker), idempotently when
  it carries ``X-AgentMail-Idempotency-Key`` (``send_idempotently``). The token is checked
  again and counted by the API's throttle (the same counter as its API calls) for each
  message. The answer is ``250 2.0.0`` with the MessageID, or the service's refusal as an
  SMTP reply with its API error code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, getaddresses
from typing import Any, cast

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from assmbl import domain
from assmbl.errors import domain_status
from assmbl.inputs import input_validate
from directory.models import Agent, ApiToken
from directory.services import token_authenticate
from mail.attachments import attachment_store
from mail.idempotency import send_idempotently
from mail.models import Message
from mail.sending import Outgoing, message_send, outgoing_parse
from mail.serializers import SendInput
from mail.smtp import db_job
from mail.smtp_session import REPLY_RECIPIENT_OK, IngestSMTP, ListenerController, ListenerHandler

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "X-AgentMail-Idempotency-Key"
# What the idempotency record says the request was: a key used here and in the API is two
# different requests.
REQUEST_PATH = "smtp:submission"
# Failed AUTH attempts a session may make before it is closed (aiosmtpd's call limit).
AUTH_ATTEMPTS = 3
REPLY_SENDER_NOT_OWNED = "553 5.7.1 <{address}>: sender address is not the authenticated agent's"
REPLY_TOKEN_GONE = "535 5.7.8 The token was revoked, or its agent deactivated"
# The SMTP reply for each HTTP status the API would answer a send with (assmbl.errors).
_REPLY_FOR_STATUS = {
    400: "550 5.6.0",
    403: "550 5.7.1",
    404: "550 5.1.1",
    409: "550 5.7.0",
    410: "550 5.1.1",
    413: "552 5.3.4",
    415: "554 5.6.1",
    429: "451 4.7.1",
}
# API error codes that a retry of the same message may overcome.
_TEMPORARY_CODES = {"idempotency_key_in_use"}


@dataclass(frozen=True)
class SubmissionLogin:
    """Who a session authenticated as: the token (checked again for each message) and its agent."""

    token_id: int
    prefix: str
    agent_pk: int
    address: str


@db_job
def submission_login(login: bytes, password: bytes) -> SubmissionLogin | None:
    """The agent ``login`` (its address) whose live token ``password`` is, or None."""
    try:
        address, plaintext = login.decode("utf-8").strip().lower(), password.decode("ascii")
    except UnicodeDecodeError:
        return None
    token = token_authenticate(plaintext)
    if token is None or token.agent is None or token.agent.address.lower() != address:
        return None
    return SubmissionLogin(token_id=token.pk, prefix=token.prefix, agent_pk=token.agent.pk, address=token.agent.address)


def _token_throttled(token: ApiToken) -> float | None:
    """Seconds to wait when the API's throttles (DRF's ``DEFAULT_THROTTLE_CLASSES``: one
    counter per token, shared with its API calls) refuse one more request of ``token``."""
    request = cast(Request, types.SimpleNamespace(auth=token, user=None, META={}))
    for throttle_class in cast("list[type[BaseThrottle]]", api_settings.DEFAULT_THROTTLE_CLASSES):
        throttle = throttle_class()
        if not throttle.allow_request(request, APIView()):
            return throttle.wait() or 1.0
    return None


def _addresses(message: EmailMessage, name: str, envelope: set[str], taken: set[str]) -> list[str]:
    """The addresses of header ``name`` that the envelope sends to, as written there."""
    found = []
    for display, address in getaddresses([str(value) for value in message.get_all(name, [])]):
        bare = address.lower()
        if bare in envelope and bare not in taken:
            taken.add(bare)
            found.append(formataddr((display, address)) if display else address)
    return found


def submission_request(raw: bytes, rcpt_tos: list[str]) -> dict[str, Any]:
    """The message as the body of ``POST /v1/send``, plus its threading headers. The
    envelope decides who gets it: header To/Cc addresses it names stay there, the rest of
    its recipients are Bcc."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    envelope, taken = {address.lower() for address in rcpt_tos}, set[str]()
    to, cc = _addresses(message, "To", envelope, taken), _addresses(message, "Cc", envelope, taken)
    bcc = [address for address in rcpt_tos if address.lower() not in taken]
    if not to:
        to, cc = cc, []
    data: dict[str, Any] = {"to": to, "cc": cc, "bcc": bcc, "subject": str(message.get("Subject", ""))}
    try:
        for kind in ("plain", "html"):
            part = message.get_body((kind,))
            if part is not None:
                data["body" if kind == "plain" else "html"] = part.get_content()
    except (LookupError, UnicodeError, KeyError) as error:
        raise domain.Invalid(f"The message body cannot be read: {error}", code="invalid_body") from None
    if "body" not in data and "html" not in data:
        data["body"] = ""
    headers = {
        name: str(value)
        for name, value in message.items()
        if name.lower().startswith("x-") and name.lower() != IDEMPOTENCY_HEADER.lower()
    }
    if headers:
        data["headers"] = headers
    data["in_reply_to"] = str(message.get("In-Reply-To", "")).strip()
    data["references"] = str(message.get("References", "")).split()
    data["idempotency_key"] = message.get(IDEMPOTENCY_HEADER)
    data["parts"] = [_attachment(part, n) for n, part in enumerate(message.iter_attachments(), 1)]
    return data


def _attachment(part: EmailMessage, number: int) -> tuple[str, str, bytes]:
    """(file name, media type, decoded bytes) of an attached part."""
    content = part.get_payload(decode=True)
    if not isinstance(content, bytes):  # a message/rfc822 part: the part itself
        content = part.as_bytes()
    return part.get_filename() or f"attachment-{number}", part.get_content_type(), content


def _message_send(
    *, agent: Agent, outgoing: Outgoing, parts: list[tuple[str, str, bytes]], key: str, threading: dict[str, Any]
) -> Message:
    """``message_send`` with the message's attachments stored as the agent's uploads first
    (within the idempotent send's transaction when there is a key: a replay stores none)."""
    ids = [
        attachment_store(agent=agent, filename=name, content_type=kind, content=content).id
        for name, kind, content in parts
    ]
    return message_send(agent=agent, outgoing=replace(outgoing, attachment_ids=ids), idempotency_key=key, **threading)


def send_refusal(error: domain.DomainError | APIException) -> str:
    """The SMTP reply for a send the service refused, with the API's error code."""
    status = domain_status(error) if isinstance(error, domain.DomainError) else error.status_code
    code = getattr(error, "code", "invalid_request")
    message = getattr(error, "message", str(error))
    if code in _TEMPORARY_CODES or status >= 500:
        reply = "451 4.3.0"
    else:
        reply = _REPLY_FOR_STATUS.get(status, "550 5.0.0")
    return f"{reply} {' '.join(str(message).split())} ({code})"


@db_job
def submission_send(login: SubmissionLogin, raw: bytes, rcpt_tos: list[str]) -> str:
    """Send one submitted message as its agent, through the API's service; the reply."""
    token = ApiToken.objects.select_related("agent").filter(pk=login.token_id).first()
    if token is None or token.revoked_at is not None or token.agent is None or not token.agent.is_active:
        return REPLY_TOKEN_GONE
    wait = _token_throttled(token)
    if wait is not None:
        return f"451 4.7.1 Too many requests for this token; try again in {max(1, round(wait))} s (rate_limited)"
    agent = token.agent
    try:
        request = submission_request(raw, rcpt_tos)
        key, parts = request.pop("idempotency_key"), request.pop("parts")
        threading = {"in_reply_to": request.pop("in_reply_to"), "references": request.pop("references")}
        outgoing = outgoing_parse(input_validate(SendInput, request))
        # What the idempotency record compares a retry with: the fields, and each part's digest.
        digests = [[name, kind, hashlib.sha256(content).hexdigest()] for name, kind, content in parts]
        result = send_idempotently(
            agent=agent,
            key=key,
            path=REQUEST_PATH,
            data={**request, **threading, "parts": digests},
            perform=lambda key: _message_send(
                agent=agent, outgoing=outgoing, parts=parts, key=key, threading=threading
            ),
        )
    except (domain.DomainError, APIException) as error:
        return send_refusal(error)
    replayed = " (a replay)" if result.replayed else ""
    return f"250 2.0.0 OK: {result.body.get('Status', 'queued')} as {result.body.get('MessageID', '')}{replayed}"


async def _client_answer(server: SMTP, args: list[str], challenge: str) -> bytes | None:
    """The client's answer to AUTH: the initial response in ``args``, or its reply to
    ``challenge``; None when it was malformed or cancelled (the client was told why)."""
    if len(args) == 1:
        answer = await server.challenge_auth(challenge)
        return None if answer is MISSING else answer
    try:
        return base64.b64decode(args[1].encode(), validate=True)
    except (binascii.Error, ValueError):
        await server.push("501 5.5.2 Can't decode base64")
        return None


class SubmissionHandler(ListenerHandler):
    """aiosmtpd handler of the submission port: the token lookup of AUTH and the send run
    in threads."""

    offers_auth = True

    def __init__(self) -> None:
        self.sends = ThreadPoolExecutor(max_workers=settings.SMTP_CHECK_THREADS, thread_name_prefix="smtp-submit")

    # AUTH PLAIN and LOGIN as aiosmtpd's own (its ``auth_*`` extension point on a
    # handler), but checked in a thread: Django refuses the database on an event loop.

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = await _client_answer(server, args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\0")
        if len(parts) != 3:  # authzid NUL authcid NUL passwd (RFC 4616)
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._login(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        login = await _client_answer(server, args, server.AuthLoginUsernameChallenge)
        password = None if login is None else await _client_answer(server, ["LOGIN"], server.AuthLoginPasswordChallenge)
        if login is None or password is None:
            return AuthResult(success=False, handled=True)
        return await self._login(server, login, password)

    async def _login(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self.sends, submission_login, login, password)
        if found is None:
            log.info("submission: failed AUTH from %r", server.session.peer if server.session else None)
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8
        return AuthResult(success=True, auth_data=found)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        login = cast(SubmissionLogin, session.auth_data)
        if address.lower() != login.address.lower():
            return REPLY_SENDER_NOT_OWNED.format(address=address)
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= settings.MAX_RECIPIENTS:
            return f"452 4.5.3 At most {settings.MAX_RECIPIENTS} recipients per message"
        envelope.rcpt_tos.append(address)
        return REPLY_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""  # bytes: compat.aiosmtpd never decodes
        login = cast(SubmissionLogin, session.auth_data)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        reply = await loop.run_in_executor(self.sends, submission_send, login, raw, list(envelope.rcpt_tos))
        log.info("submission by %s: %s (%.0f ms)", login.address, reply, (time.monotonic() - started) * 1000)
        return reply


class SubmissionController(ListenerController):
    """The submission port: the receiving port's sessions (peer cap, deadline, long
    lines, enhanced codes), with STARTTLS required and AUTH."""

    handler: SubmissionHandler

    def factory(self) -> SMTP:
        return IngestSMTP(
            self.handler,
            ident="Assmbl Mail submission",
            require_starttls=True,
            auth_required=True,
            command_call_limit={"AUTH": AUTH_ATTEMPTS, "*": 1_000_000},
            **self.session_options(),
        )

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert=no_assert)
        self.handler.sends.shutdown(wait=True, cancel_futures=True)


def submission_controller(host: str, port: int, **kwargs: Any) -> SubmissionController:
    return SubmissionController(SubmissionHandler(), hostname=host, port=port, **kwargs)
