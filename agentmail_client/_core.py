"""What the sync and async clients share: request specs, the retry policy, and decoding.

Every endpoint is described once, as a ``RequestSpec`` built by ``_Endpoints`` below; the
two clients only differ in how they execute a spec (``httpx.Client`` or ``httpx.AsyncClient``,
``time.sleep`` or ``asyncio.sleep``). That keeps the two surfaces identical by construction.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast
from urllib.parse import quote, urlsplit

import httpx

from agentmail_client.errors import AgentMailError, RateLimitError, TransportError, error_class

__version__ = "0.1.0"
# datetime.UTC is Python 3.11+; the package supports 3.10.
UTC = dt.timezone.utc  # noqa: UP017
USER_AGENT = f"agentmail-client-python/{__version__}"

Result = Literal["json", "bytes", "none"]

# Statuses worth another attempt: the server refused for now (429) or failed (5xx).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 20.0
# A Retry-After beyond this is not slept through silently; the caller gets the RateLimitError.
MAX_RETRY_AFTER = 120.0


@dataclass
class RequestSpec:
    """One API call, independent of how it is sent."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    result: Result = "json"
    follow_redirects: bool = False
    # Extra seconds on top of the client's timeout (long-poll waits on the server).
    extra_timeout: float = 0.0
    # A POST that sets a state (the batch update): doing it twice is doing it once.
    idempotent: bool = False

    @property
    def replay_safe(self) -> bool:
        """Whether sending this request twice cannot do the thing twice. POSTs are safe only
        with an Idempotency-Key or when they set a state; others (GET, PATCH to a state,
        DELETE) are by nature."""
        return self.method != "POST" or self.idempotent or "Idempotency-Key" in self.headers


def segment(value: str) -> str:
    """One path segment: ids are URL-safe, but an address or a caller's typo must not
    escape its segment."""
    return quote(str(value), safe="")


def query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return str(value)


def query(**params: Any) -> dict[str, str]:
    """Only the parameters the caller gave: the API answers 400 to parameters it does not
    know, and an omitted filter means the server's default."""
    return {key: query_value(value) for key, value in params.items() if value is not None}


def body(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def rfc3339(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("datetimes sent to the API must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def idempotency_headers(key: str | None) -> dict[str, str]:
    """Every send carries a key, generated here when the caller gives none, so that the
    automatic retries of one call can never send twice."""
    return {"Idempotency-Key": key if key is not None else str(uuid.uuid4())}


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - dt.datetime.now(UTC)).total_seconds())


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): a random delay in
    [0, min(cap, base * 2**attempt)], so that many clients failing together spread out.
    A server's Retry-After is a floor, never shortened."""
    delay = random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def api_base_url(base_url: str) -> str:
    """The API's root: ``base_url`` as given, or with ``/v1`` added to a bare server root
    (``http://127.0.0.1:8000``), which has no API of its own."""
    base_url = base_url.rstrip("/")
    if urlsplit(base_url).path == "":
        return f"{base_url}/v1"
    return base_url


def error_from_response(response: httpx.Response) -> AgentMailError:
    code, message, details = f"http_{response.status_code}", response.reason_phrase or "Error", None
    try:
        envelope = response.json().get("error")
    except (ValueError, AttributeError):
        envelope = None
    if isinstance(envelope, Mapping):
        code = str(envelope.get("code") or code)
        message = str(envelope.get("message") or message)
        details = envelope.get("details")
    elif response.status_code == 404:
        # Every 404 of the API carries the envelope; a bare one comes from outside the API.
        message = (
            f"No API at {response.url}: the server answered a plain 404. base_url must be the "
            "server's root plus /v1, e.g. http://127.0.0.1:8000/v1."
        )
    cls = error_class(response.status_code)
    headers = dict(response.headers)
    if cls is RateLimitError:
        return RateLimitError(
            response.status_code,
            code,
            message,
            details,
            headers=headers,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    return cls(response.status_code, code, message, details, headers=headers)


def decode(response: httpx.Response, spec: RequestSpec) -> Any:
    if spec.result == "none" or response.status_code == 204:
        return None
    if spec.result == "bytes":
        return response.content
    return response.json()


class RetryState:
    """The retry decision for one call, shared by both clients' loops."""

    def __init__(self, spec: RequestSpec, max_retries: int) -> None:
        self.spec = spec
        self.max_retries = max_retries
        self.attempt = 0
        self.resent_after_drop = False

    def outcome(self, response: httpx.Response) -> tuple[bool, Any]:
        """``(True, result)`` when the call is over, ``(False, delay)`` to try again; raises
        the mapped AgentMailError otherwise."""
        if response.is_success:
            return True, decode(response, self.spec)
        if response.status_code == 404 and self.spec.method == "DELETE" and self.resent_after_drop:
            # The first DELETE went through but its answer was lost: the goal is reached.
            return True, None
        delay = self.after_response(response)
        if delay is None:
            raise error_from_response(response)
        return False, delay

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before another attempt, or None to stop here."""
        status = response.status_code
        if status not in RETRY_STATUSES or self.attempt >= self.max_retries:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            # A 429 was refused before any work: always safe to repeat.
            if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                return None
        elif not self.spec.replay_safe:
            return None
        delay = backoff_delay(self.attempt, retry_after)
        self.attempt += 1
        return delay

    def after_transport_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait, or raises TransportError when this call must not be repeated."""
        # A refused connection never reached the server, so even a keyless POST may retry.
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        if self.attempt >= self.max_retries or not (never_sent or self.spec.replay_safe):
            raise TransportError(f"{type(exc).__name__}: {exc}", cause=exc) from exc
        delay = backoff_delay(self.attempt)
        self.attempt += 1
        self.resent_after_drop = self.resent_after_drop or not never_sent
        return delay


# --- The event stream (GET /v1/events/stream, Server-Sent Events) ------------------------------
STREAM_PATH = "/events/stream"
# The server sends a heartbeat comment every 15 s: a connection silent for this long is dead.
STREAM_READ_TIMEOUT = 60.0


@dataclass
class SseParser:
    """Lines of a text/event-stream in, ``(id, data)`` of each complete event out (the
    WHATWG rules this API uses: ``id``, ``event``, ``data``, comments, a blank line ends
    an event)."""

    event_id: str | None = None
    data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str | None, str] | None:
        if not line:
            if not self.data:
                return None
            done, self.data = (self.event_id, "\n".join(self.data)), []
            return done
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self.data.append(value)
        elif name == "id":
            self.event_id = value
        return None


class StreamState:
    """The reconnect decision of an event stream, shared by both clients: each drop
    reconnects with ``Last-Event-ID``, after a backoff that resets once events flow."""

    def __init__(self, last_event_id: str | None) -> None:
        self.last_event_id = last_event_id
        self.attempt = 0

    def headers(self, auth: Mapping[str, str]) -> dict[str, str]:
        extra = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        return {**auth, "Accept": "text/event-stream", **extra}

    def refused(self, response: httpx.Response) -> float:
        """Seconds before reconnecting after a non-200 answer (429, 5xx), or raises its error."""
        if response.status_code == 429 or response.status_code >= 500:
            return self.after_drop(parse_retry_after(response.headers.get("Retry-After")))
        raise error_from_response(response)

    def after_drop(self, retry_after: float | None = None) -> float:
        delay = backoff_delay(min(self.attempt, 5), retry_after)
        self.attempt += 1
        return delay

    def item(self, event: tuple[str | None, str]) -> dict[str, Any]:
        self.attempt = 0
        self.last_event_id = event[0] or self.last_event_id
        item: dict[str, Any] = json.loads(event[1])
        return item


def same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def matches(item: Mapping[str, Any], q: str | None) -> bool:
    """The inbox's ``q`` rule, applied to an event's item: case-insensitive substring of
    Subject, BodyPreview, Sender or From."""
    if q is None:
        return True
    needle = q.casefold()
    return any(needle in str(item.get(name) or "").casefold() for name in ("Subject", "BodyPreview", "Sender", "From"))


def received_ids(page: Mapping[str, Any], q: str | None) -> list[str]:
    """The MessageIDs of a page of events' message.received items that match ``q``, in order."""
    return [
        str(event["data"]["MessageID"])
        for event in page.get("items", [])
        if event.get("type") == "message.received" and matches(event.get("data") or {}, q)
    ]


def update_steps(
    add_labels: list[str] | None, remove_labels: list[str] | None, is_read: bool | None, archived: bool | None
) -> list[tuple[str, dict[str, Any]]]:
    """The PATCH methods (name, arguments) that ``update_message`` calls, in order: labels,
    read, archive. Raises ValueError when nothing is to change."""
    steps: list[tuple[str, dict[str, Any]]] = []
    if add_labels or remove_labels:
        steps.append(("patch_message_labels", {"add": add_labels, "remove": remove_labels}))
    if is_read is not None:
        steps.append(("patch_message_read", {"is_read": is_read}))
    if archived is not None:
        steps.append(("patch_message_archive", {"archived": archived}))
    if not steps:
        raise ValueError("nothing to update: give add_labels, remove_labels, is_read or archived")
    return steps


def monotonic() -> float:
    return time.monotonic()


def wait_seconds(deadline: float) -> int | None:
    """The long-poll ``wait`` for the time left: whole seconds, at least 1, at most the
    server's 60; None (no waiting) once the deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    return min(60, max(1, math.ceil(remaining)))


_J = TypeVar("_J")  # what a JSON-returning method returns: dict, or an awaitable of it
_B = TypeVar("_B")  # bytes, or an awaitable of bytes
_N = TypeVar("_N")  # None, or an awaitable of None


class _Endpoints(Generic[_J, _B, _N]):
    """Every single-request method of the API, written once. ``_call`` executes a spec:
    synchronously in ``AgentMailClient``, as a coroutine in ``AsyncAgentMailClient``."""

    def _configure(self, base_url: str, token: str, timeout: float, max_retries: int) -> None:
        """What both clients keep; each adds its own httpx client."""
        self.base_url = api_base_url(base_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self._auth = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        self.last_event_cursor: str | None = None
        self.last_event_id: str | None = None

    def _call(self, spec: RequestSpec) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _json(self, spec: RequestSpec) -> _J:
        return cast(_J, self._call(spec))

    def _bytes(self, spec: RequestSpec) -> _B:
        return cast(_B, self._call(spec))

    def _none(self, spec: RequestSpec) -> _N:
        return cast(_N, self._call(spec))

    # --- Sending -------------------------------------------------------------------------

    def send_mail(
        self,
        to: str | list[str],
        subject: str,
        body: str | None,
        *,
        html: str | None = None,
        cc: str | list[str] | None = None,
        bcc: str | list[str] | None = None,
        reply_to: str | list[str] | None = None,
        attachments: list[str] | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        send_at: dt.datetime | str | None = None,
    ) -> _J:
        """POST /v1/send. Returns ``{"MessageID", "Status"}``. ``attachments`` are AttachmentIDs
        from ``upload_attachment``; ``headers`` only ``X-`` headers; ``send_at`` (timezone-aware,
        at most 30 days ahead) schedules it: Status ``scheduled``."""
        payload = _body(
            send_at=_when(send_at),
            to=to,
            subject=subject,
            body=body,
            html=html,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            attachments=attachments,
            headers=headers,
        )
        return self._json(RequestSpec("POST", "/send", json=payload, headers=idempotency_headers(idempotency_key)))

    def reply(
        self,
        message_id: str,
        body: str | None = None,
        *,
        html: str | None = None,
        reply_all: bool = False,
        attachments: list[str] | None = None,
        idempotency_key: str | None = None,
        send_at: dt.datetime | str | None = None,
    ) -> _J:
        """POST /v1/messages/{id}/reply: recipients, ``Re:`` subject and threading headers are
        derived by the server."""
        payload = _body(
            body=body, html=html, reply_all=reply_all or None, attachments=attachments, send_at=_when(send_at)
        )
        return self._json(
            RequestSpec(
                "POST",
                f"/messages/{segment(message_id)}/reply",
                json=payload,
                headers=idempotency_headers(idempotency_key),
            )
        )

    def forward(
        self,
        message_id: str,
        to: str | list[str],
        body: str | None = None,
        *,
        idempotency_key: str | None = None,
        send_at: dt.datetime | str | None = None,
    ) -> _J:
        """POST /v1/messages/{id}/forward."""
        return self._json(
            RequestSpec(
                "POST",
                f"/messages/{segment(message_id)}/forward",
                json=_body(to=to, body=body, send_at=_when(send_at)),
                headers=idempotency_headers(idempotency_key),
            )
        )

    # --- Governed sending: drafts, cancel ------------------------------------------------

    def create_draft(self, **body: Any) -> _J:
        """POST /v1/drafts: the fields of a send (``to``, ``subject``, ``body``, ``html``,
        ``cc``, ``bcc``, ``reply_to``, ``headers``, ``attachments``, ``send_at``), all
        optional, or a reply draft (``in_reply_to``: a MessageID, ``reply_all``). Returns the
        draft with its ``DraftID``."""
        return self._json(RequestSpec("POST", "/drafts", json=_draft_body(body)))

    def send_draft(self, draft_id: str, idempotency_key: str | None = None) -> _J:
        """POST /v1/drafts/{id}/send: sent like ``send_mail`` (``{"MessageID", "Status"}``);
        the draft stays, showing its ``MessageID``, and cannot be sent or changed again."""
        return self._json(
            RequestSpec("POST", f"/drafts/{segment(draft_id)}/send", headers=idempotency_headers(idempotency_key))
        )

    def cancel_message(self, message_id: str) -> _J:
        """POST /v1/messages/{id}/cancel: a scheduled, held or not yet handed over message
        becomes ``canceled``; after that, ``ConflictError`` (code ``already_sent``)."""
        return self._json(RequestSpec("POST", f"/messages/{segment(message_id)}/cancel"))

    def list_drafts(self, limit: int | None = None, cursor: str | None = None) -> _J:
        return self._json(RequestSpec("GET", "/drafts", params=query(limit=limit, cursor=cursor)))

    def get_draft(self, draft_id: str) -> _J:
        return self._json(RequestSpec("GET", f"/drafts/{segment(draft_id)}"))

    def update_draft(self, draft_id: str, **body: Any) -> _J:
        """PATCH /v1/drafts/{id}: the fields given change; ``None`` clears one."""
        return self._json(RequestSpec("PATCH", f"/drafts/{segment(draft_id)}", json=_draft_body(body, keep_none=True)))

    def delete_draft(self, draft_id: str) -> _N:
        return self._none(RequestSpec("DELETE", f"/drafts/{segment(draft_id)}", result="none"))

    def get_thread(self, thread_id: str, limit: int | None = None, cursor: str | None = None) -> _J:
        """GET /v1/threads/{thread_id}: ``{"thread_id", "items", "next_cursor", "has_more"}``,
        the thread's messages in order."""
        return self._json(
            RequestSpec("GET", f"/threads/{segment(thread_id)}", params=query(limit=limit, cursor=cursor))
        )

    def list_threads(
        self,
        limit: int | None = 25,
        cursor: str | None = None,
        q: str | None = None,
        label: str | None = None,
        is_read: bool | None = None,
        include_archived: bool | None = None,
    ) -> _J:
        """GET /v1/threads: ``{"items", "next_cursor", "has_more"}``, newest activity first;
        an item is ``{ThreadID, Subject, Participants, MessageCount, UnreadCount, Labels,
        FirstMessageAt, LastMessageAt, LastMessageID, LastMessagePreview}``. ``q`` is the
        inbox's search; a thread matches when one of its messages does."""
        params = query(limit=limit, cursor=cursor, q=q, label=label, is_read=is_read, include_archived=include_archived)
        return self._json(RequestSpec("GET", "/threads", params=params))

    def patch_thread_labels(self, thread_id: str, add: list[str] | None = None, remove: list[str] | None = None) -> _J:
        """PATCH /v1/threads/{id}/labels: every message of the thread, all or nothing.
        Returns the thread item."""
        return self._json(
            RequestSpec("PATCH", f"/threads/{segment(thread_id)}/labels", json=_body(add=add, remove=remove))
        )

    def patch_thread_read(self, thread_id: str, is_read: bool) -> _J:
        """PATCH /v1/threads/{id}/read: every received message of the thread."""
        return self._json(RequestSpec("PATCH", f"/threads/{segment(thread_id)}/read", json={"is_read": is_read}))

    def patch_thread_archive(self, thread_id: str, archived: bool) -> _J:
        """PATCH /v1/threads/{id}/archive. Archiving a thread whose messages are all archived
        raises ConflictError."""
        return self._json(RequestSpec("PATCH", f"/threads/{segment(thread_id)}/archive", json={"archived": archived}))

    def list_sent(self, limit: int | None = None, cursor: str | None = None, **filters: Any) -> _J:
        """GET /v1/sent: outbound messages, same page shape and cursor rules as the inbox."""
        return self._json(RequestSpec("GET", "/sent", params=query(limit=limit, cursor=cursor, **filters)))

    # --- Inbox ---------------------------------------------------------------------------

    def list_inbox(
        self,
        limit: int | None = 25,
        cursor: str | None = None,
        q: str | None = None,
        label: str | None = None,
        is_read: bool | None = None,
        include_archived: bool | None = None,
        verified_only: bool | None = None,
    ) -> _J:
        """GET /v1/inbox: ``{"items", "next_cursor", "has_more"}``, oldest first. The server's
        default ``limit`` is 25 (max 100)."""
        params = query(
            limit=limit,
            cursor=cursor,
            q=q,
            label=label,
            is_read=is_read,
            include_archived=include_archived,
            verified_only=verified_only,
        )
        return self._json(RequestSpec("GET", "/inbox", params=params))

    def get_unread_count(self, **filters: Any) -> _J:
        """GET /v1/inbox/unread-count: ``{"unread_count"}`` (archived never counted).
        Filters: ``label``, ``verified_only``."""
        return self._json(RequestSpec("GET", "/inbox/unread-count", params=query(**filters)))

    def get_message(self, message_id: str) -> _J:
        """GET /v1/messages/{id}: the inbox item, the decoded content (``Text``, ``Html``,
        ``ExtractedText``, ``Codes``, ``Links``, ``Safety``, ``PromptText``) and ``raw_mime``."""
        return self._json(RequestSpec("GET", f"/messages/{segment(message_id)}"))

    def get_raw_message(self, message_id: str) -> _B:
        """GET /v1/messages/{id}/raw: the exact stored bytes (``message/rfc822``)."""
        return self._bytes(RequestSpec("GET", f"/messages/{segment(message_id)}/raw", result="bytes"))

    def delete_message(self, message_id: str) -> _N:
        """DELETE /v1/messages/{id}."""
        return self._none(RequestSpec("DELETE", f"/messages/{segment(message_id)}", result="none"))

    def patch_message_labels(
        self, message_id: str, add: list[str] | None = None, remove: list[str] | None = None
    ) -> _J:
        """PATCH /v1/messages/{id}/labels, atomically. Returns the item."""
        return self._json(
            RequestSpec("PATCH", f"/messages/{segment(message_id)}/labels", json=_body(add=add, remove=remove))
        )

    def patch_message_read(self, message_id: str, is_read: bool) -> _J:
        """PATCH /v1/messages/{id}/read. Returns the item."""
        return self._json(RequestSpec("PATCH", f"/messages/{segment(message_id)}/read", json={"is_read": is_read}))

    def patch_message_archive(self, message_id: str, archived: bool) -> _J:
        """PATCH /v1/messages/{id}/archive. Archiving an archived message raises ConflictError."""
        return self._json(RequestSpec("PATCH", f"/messages/{segment(message_id)}/archive", json={"archived": archived}))

    def get_messages(self, ids: list[str]) -> _J:
        """GET /v1/messages?ids=...: ``{"items", "not_found"}`` for up to 100 ids, items in the
        order asked (without ``raw_mime``); another agent's id is in ``not_found``."""
        return self._json(RequestSpec("GET", "/messages", params={"ids": ",".join(ids)}))

    def batch_update(
        self,
        ids: list[str],
        *,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
        is_read: bool | None = None,
        archived: bool | None = None,
    ) -> _J:
        """POST /v1/messages/batch: the changes on up to 100 messages in one transaction,
        ``{"items", "not_found"}``. A message that would pass 20 labels raises
        ValidationError (``too_many_labels``) and nothing changes. Setting a state is
        idempotent, so the call is retried like a PATCH."""
        payload = _body(ids=ids, add_labels=add_labels, remove_labels=remove_labels, is_read=is_read, archived=archived)
        return self._json(RequestSpec("POST", "/messages/batch", json=payload, idempotent=True))

    # --- Attachments ---------------------------------------------------------------------

    def get_attachment_text(self, message_id: str, attachment_id: str) -> _J:
        """GET /v1/messages/{id}/attachments/{att}/text: ``{AttachmentID, ContentType, Text,
        Truncated}``. A type without text raises ``AgentMailError`` with ``code``
        ``unsupported_attachment_type`` (415); a file over the server's limit, code
        ``attachment_too_large`` (413)."""
        return self._json(
            RequestSpec("GET", f"/messages/{segment(message_id)}/attachments/{segment(attachment_id)}/text")
        )

    def create_attachment(self, filename: str, content_type: str, size: int, *, sha256: str | None = None) -> _J:
        """POST /v1/attachments: the claim check ``{AttachmentID, upload_url, upload_method,
        upload_fields?, expires_at}``. ``upload_attachment`` does this and the upload."""
        payload = _body(filename=filename, content_type=content_type, size=size, sha256=sha256)
        return self._json(RequestSpec("POST", "/attachments", json=payload))

    def get_attachment(self, attachment_id: str) -> _J:
        """GET /v1/attachments/{id}: an upload's state (pending, uploaded, claimed, expired)."""
        return self._json(RequestSpec("GET", f"/attachments/{segment(attachment_id)}"))

    def download_attachment(self, message_id: str, attachment_id: str) -> _B:
        """GET /v1/messages/{id}/attachments/{att}: the bytes. A redirect to a presigned URL
        is followed (httpx drops the Authorization header when the origin changes)."""
        return self._bytes(
            RequestSpec(
                "GET",
                f"/messages/{segment(message_id)}/attachments/{segment(attachment_id)}",
                result="bytes",
                follow_redirects=True,
            )
        )

    # --- Directory and trust -------------------------------------------------------------

    def list_senders(self, status: str | None = None, *, agent_id: str | None = None) -> _J:
        """GET /v1/directory/senders: ``{"items": [...]}`` with status, last seen and message
        count (``status``: trusted, verified, blocked, allowed...). ``agent_id`` with an operator token."""
        return self._json(RequestSpec("GET", "/directory/senders", params=query(status=status, agent_id=agent_id)))

    def _sender_entry(
        self, action: str, address_or_domain: str, agent_id: str | None, scope: str | None, note: str | None
    ) -> _J:
        payload = _body(address_or_domain=address_or_domain, action=action, agent_id=agent_id, scope=scope, note=note)
        return self._json(RequestSpec("POST", "/directory/senders", json=payload))

    def trust_sender(self, address: str, *, agent_id: str | None = None, note: str | None = None) -> _J:
        """POST /v1/directory/senders ``action: trust``: the address's mail becomes
        SenderVerified (when it authenticates). ``agent_id`` with an operator token."""
        return self._sender_entry("trust", address, agent_id, None, note)

    def allow_sender(
        self, address_or_domain: str, *, agent_id: str | None = None, scope: str | None = None, note: str | None = None
    ) -> _J:
        """POST /v1/directory/senders ``action: allow`` (an address or a whole domain)."""
        return self._sender_entry("allow", address_or_domain, agent_id, scope, note)

    def block_sender(
        self, address_or_domain: str, *, agent_id: str | None = None, scope: str | None = None, note: str | None = None
    ) -> _J:
        """POST /v1/directory/senders ``action: block``; ``scope="account"`` (operator token) for
        every agent of the account."""
        return self._sender_entry("block", address_or_domain, agent_id, scope, note)

    def delete_sender(self, entry_id: str) -> _N:
        """DELETE /v1/directory/senders/{id}: forget an entry (``id`` from ``list_senders``)."""
        return self._none(RequestSpec("DELETE", f"/directory/senders/{segment(entry_id)}", result="none"))

    def find_agents(self, q: str) -> _J:
        """GET /v1/directory/agents?q=: agents of this deployment by id, address or name."""
        return self._json(RequestSpec("GET", "/directory/agents", params=query(q=q)))

    # --- Webhooks ------------------------------------------------------------------------

    def create_webhook(
        self,
        url: str,
        *,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        agents: list[str] | None = None,
    ) -> _J:
        """POST /v1/webhooks. The answer carries ``secret`` (``whsec_...``), shown only now."""
        payload = _body(url=url, event_types=event_types, enabled=enabled, description=description, agents=agents)
        return self._json(RequestSpec("POST", "/webhooks", json=payload))

    def list_webhooks(self) -> _J:
        """GET /v1/webhooks: ``{"items": [...]}``."""
        return self._json(RequestSpec("GET", "/webhooks"))

    def get_webhook(self, webhook_id: str) -> _J:
        return self._json(RequestSpec("GET", f"/webhooks/{segment(webhook_id)}"))

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
        description: str | None = None,
        agents: list[str] | None = None,
        all_agents: bool | None = None,
    ) -> _J:
        """PATCH /v1/webhooks/{id}: only the fields given change."""
        payload = _body(
            url=url,
            event_types=event_types,
            enabled=enabled,
            description=description,
            agents=agents,
            all_agents=all_agents,
        )
        return self._json(RequestSpec("PATCH", f"/webhooks/{segment(webhook_id)}", json=payload))

    def delete_webhook(self, webhook_id: str) -> _N:
        return self._none(RequestSpec("DELETE", f"/webhooks/{segment(webhook_id)}", result="none"))

    def rotate_webhook_secret(self, webhook_id: str) -> _J:
        """POST /v1/webhooks/{id}/rotate-secret: the new ``secret``; the old one keeps signing
        for an overlap period."""
        return self._json(RequestSpec("POST", f"/webhooks/{segment(webhook_id)}/rotate-secret"))

    def replay_webhook(
        self,
        webhook_id: str,
        *,
        event_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> _J:
        """POST /v1/webhooks/{id}/replay: one event, or a time range. ``{"replayed": n}``."""
        payload = _body(
            event_id=event_id,
            since=rfc3339(since) if since is not None else None,
            until=rfc3339(until) if until is not None else None,
        )
        return self._json(RequestSpec("POST", f"/webhooks/{segment(webhook_id)}/replay", json=payload))

    def list_webhook_deliveries(self, webhook_id: str, **filters: Any) -> _J:
        """GET /v1/webhooks/{id}/deliveries (``limit``, ``state``)."""
        return self._json(RequestSpec("GET", f"/webhooks/{segment(webhook_id)}/deliveries", params=query(**filters)))

    # --- Events --------------------------------------------------------------------------

    def list_events(self, after: str | None = None, limit: int | None = None, wait: int | None = None) -> _J:
        """GET /v1/events: ``{"items", "next_cursor", "has_more"}``. With ``wait`` (seconds,
        at most 60) the server holds the request until an event arrives."""
        return self._json(
            RequestSpec(
                "GET", "/events", params=query(after=after, limit=limit, wait=wait), extra_timeout=float(wait or 0)
            )
        )

    # --- Operator ------------------------------------------------------------------------

    def create_agent(self, agent_id: str, *, display_name: str | None = None, policy: str | None = None) -> _J:
        """POST /v1/agents (operator token). The answer carries the agent's ``token``, once."""
        return self._json(
            RequestSpec("POST", "/agents", json=_body(agent_id=agent_id, display_name=display_name, policy=policy))
        )

    def list_agents(self, limit: int | None = None, cursor: str | None = None) -> _J:
        """GET /v1/agents (operator token)."""
        return self._json(RequestSpec("GET", "/agents", params=query(limit=limit, cursor=cursor)))

    def get_agent(self, agent_id: str) -> _J:
        return self._json(RequestSpec("GET", f"/agents/{segment(agent_id)}"))

    def update_agent(
        self,
        agent_id: str,
        *,
        display_name: str | None = None,
        policy: str | None = None,
        outbound: dict[str, Any] | None = None,
    ) -> _J:
        """PATCH /v1/agents/{agent_id}: display name, trust policy, or outbound policy
        (``{"approval", "allowed_recipients", "max_per_hour", "max_per_day", "undo_seconds"}``,
        any of them; a quota set to ``None`` is lifted)."""
        payload = _body(display_name=display_name, policy=policy, outbound=outbound)
        return self._json(RequestSpec("PATCH", f"/agents/{segment(agent_id)}", json=payload))

    def list_approvals(self, limit: int | None = None, cursor: str | None = None) -> _J:
        """GET /v1/approvals (operator token): the account's messages awaiting approval."""
        return self._json(RequestSpec("GET", "/approvals", params=query(limit=limit, cursor=cursor)))

    def approve_message(self, message_id: str, note: str | None = None) -> _J:
        """POST /v1/approvals/{id}/approve (operator token): the message goes out."""
        return self._json(RequestSpec("POST", f"/approvals/{segment(message_id)}/approve", json=_body(note=note)))

    def reject_message(self, message_id: str, note: str | None = None) -> _J:
        """POST /v1/approvals/{id}/reject (operator token): the message is never sent."""
        return self._json(RequestSpec("POST", f"/approvals/{segment(message_id)}/reject", json=_body(note=note)))

    def list_suppressions(self, limit: int | None = None, cursor: str | None = None) -> _J:
        """GET /v1/suppressions (operator token): addresses that bounced hard or complained."""
        return self._json(RequestSpec("GET", "/suppressions", params=query(limit=limit, cursor=cursor)))

    def delete_suppression(self, address: str) -> _N:
        """DELETE /v1/suppressions/{address} (operator token): mail to it may go out again."""
        return self._none(RequestSpec("DELETE", f"/suppressions/{segment(address)}", result="none"))

    def delete_agent(self, agent_id: str) -> _N:
        """DELETE /v1/agents/{agent_id}: deactivate (mail is kept, tokens revoked)."""
        return self._none(RequestSpec("DELETE", f"/agents/{segment(agent_id)}", result="none"))

    def rotate_agent_token(self, agent_id: str) -> _J:
        """POST /v1/agents/{agent_id}/tokens: revoke the agent's tokens; ``{"agent_id", "token"}``."""
        return self._json(RequestSpec("POST", f"/agents/{segment(agent_id)}/tokens"))


_body = body


def _when(value: dt.datetime | str | None) -> str | None:
    return rfc3339(value) if isinstance(value, dt.datetime) else value


def _draft_body(fields: Mapping[str, Any], *, keep_none: bool = False) -> dict[str, Any]:
    out = {key: _when(value) if key == "send_at" else value for key, value in fields.items()}
    return out if keep_none else {key: value for key, value in out.items() if value is not None}


def claim_upload_request(claim: Mapping[str, Any], data: bytes, content_type: str, filename: str) -> dict[str, Any]:
    """The keyword arguments of the storage upload for a claim check: a presigned POST form
    (S3's ``upload_fields``, the file last) or a plain PUT/POST of the bytes."""
    method = str(claim.get("upload_method") or ("POST" if claim.get("upload_fields") else "PUT")).upper()
    fields = claim.get("upload_fields")
    if fields:
        return {
            "method": method,
            "url": claim["upload_url"],
            "data": {str(k): str(v) for k, v in fields.items()},
            "files": {"file": (filename, data, content_type)},
        }
    return {"method": method, "url": claim["upload_url"], "content": data, "headers": {"Content-Type": content_type}}


def read_upload(path_or_bytes: Any, filename: str | None, content_type: str | None) -> tuple[bytes, str, str]:
    import mimetypes
    import os

    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
        if filename is None:
            raise ValueError("filename is required when uploading bytes")
    else:
        path = os.fspath(path_or_bytes)
        with open(path, "rb") as handle:
            data = handle.read()
        filename = filename or os.path.basename(path)
    if content_type is None:
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return data, filename, content_type
