"""The synchronous client."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, cast

import httpx

from agentmail_client import _core
from agentmail_client._core import RequestSpec, RetryState
from agentmail_client.errors import TransportError
from agentmail_client.webhooks import verify_webhook

JSON = dict[str, Any]


class AgentMailClient(_core._Endpoints[JSON, bytes, None]):
    """Client for the Assmbl Mail API.

    ``base_url`` is the server root plus ``/v1`` (``http://127.0.0.1:8000/v1``; a bare server
    root gets ``/v1`` added); ``token`` an agent token (or an operator token for the operator
    methods). Errors raise subclasses of
    ``AgentMailError``. Connection errors, 429 and 5xx are retried up to ``max_retries`` times
    with exponential backoff and full jitter; sends always carry an ``Idempotency-Key`` so a
    retry never sends twice.
    """

    verify_webhook = staticmethod(verify_webhook)

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._configure(base_url, token, timeout, max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentMailClient:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def _call(self, spec: RequestSpec) -> Any:
        state = RetryState(spec, self.max_retries)
        while True:
            try:
                response = self._http.request(
                    spec.method,
                    self.base_url + spec.path,
                    params=spec.params or None,
                    json=spec.json,
                    headers={**self._auth, **spec.headers},
                    follow_redirects=spec.follow_redirects,
                    timeout=self.timeout + spec.extra_timeout,
                )
            except httpx.TransportError as exc:
                time.sleep(state.after_transport_error(exc))
                continue
            done, value = state.outcome(response)
            if done:
                return value
            response.close()
            time.sleep(value)

    # --- Iterators and multi-step calls ----------------------------------------------------

    def iter_inbox_pages(self, page_size: int = 50, **filters: Any) -> Iterator[JSON]:
        """Every page of the inbox, following ``next_cursor``; each message exactly once."""
        cursor: str | None = None
        while True:
            page = self.list_inbox(limit=page_size, cursor=cursor, **filters)
            yield page
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    def iter_thread_pages(self, page_size: int = 50, **filters: Any) -> Iterator[JSON]:
        """Every page of ``list_threads``, following ``next_cursor``. Threads are ordered by
        last activity: one that gets a message while paging moves to the front, so a long
        walk may meet it again or, if it had not been reached, miss it."""
        cursor: str | None = None
        while True:
            page = self.list_threads(limit=page_size, cursor=cursor, **filters)
            yield page
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    def iter_sent_pages(self, page_size: int = 50, **filters: Any) -> Iterator[JSON]:
        cursor: str | None = None
        while True:
            page = self.list_sent(limit=page_size, cursor=cursor, **filters)
            yield page
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    def iter_events(self, after: str | None = None, wait: int = 30) -> Iterator[JSON]:
        """Every event from ``after`` on, forever: long-polls ``wait`` seconds when caught up.
        The cursor to resume from is ``self.last_event_cursor``."""
        while True:
            page = self.list_events(after=after, wait=wait)
            after = page.get("next_cursor") or after
            self.last_event_cursor = after
            yield from page.get("items", [])

    def iter_event_stream(self, last_event_id: str | None = None) -> Iterator[JSON]:
        """Every event after ``last_event_id`` (an event's ``id`` from the stream, or a
        ``next_cursor`` of ``list_events``; the start of the event log when None), forever,
        as each one happens, over ``GET /v1/events/stream`` (Server-Sent Events). A dropped
        connection, a 5xx or a 429 reconnects after a backoff with ``Last-Event-ID``, so no
        event is missed or repeated; the id to resume from is ``self.last_event_id``."""
        state = _core.StreamState(last_event_id)
        timeout = httpx.Timeout(self.timeout, read=_core.STREAM_READ_TIMEOUT)
        while True:
            try:
                with self._http.stream(
                    "GET", self.base_url + _core.STREAM_PATH, headers=state.headers(self._auth), timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        time.sleep(state.refused(response))
                        continue
                    parser = _core.SseParser()
                    for line in response.iter_lines():
                        if (event := parser.feed(line)) is not None:
                            item = state.item(event)
                            self.last_event_id = state.last_event_id
                            yield item
            except httpx.TransportError:
                pass
            time.sleep(state.after_drop())

    def wait_for_message(
        self, q: str | None = None, timeout: float = 60, after: str | None = None, *, new_only: bool = False
    ) -> JSON | None:
        """The first ``message.received`` item after the cursor ``after`` (the start of the
        event log when None) whose Subject, BodyPreview, Sender or From contains ``q``; None
        when ``timeout`` seconds pass first. ``new_only`` without ``after``: only mail arriving
        after this call counts (as in ``wait_for_code``, a mail within the server's event
        visibility lag before the call counts as new). The cursor to continue from is
        ``self.last_event_cursor``."""
        deadline = _core.monotonic() + timeout
        if new_only and after is None:
            after = self._event_log_end()
        while True:
            page = self.list_events(after=after, wait=_core.wait_seconds(deadline))
            after = page.get("next_cursor") or after
            self.last_event_cursor = after
            for event in page.get("items", []):
                if event.get("type") == "message.received" and _core.matches(event.get("data") or {}, q):
                    return cast(JSON, event["data"])
            if not page.get("has_more") and _core.monotonic() >= deadline:
                return None

    def _event_log_end(self) -> str | None:
        """The cursor after the last event the log shows now."""
        after: str | None = None
        while True:
            page = self.list_events(after=after, limit=100)
            after = page.get("next_cursor") or after
            if not page.get("has_more"):
                self.last_event_cursor = after
                return after

    def update_message(
        self,
        message_id: str,
        *,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
        is_read: bool | None = None,
        archived: bool | None = None,
    ) -> JSON:
        """Labels, read state and archiving of one message, each given part applied in that
        order (one PATCH each); returns the item as the last one left it. A refused part
        raises and leaves the parts before it applied."""
        steps = _core.update_steps(add_labels, remove_labels, is_read, archived)
        item: JSON = {}
        for name, kwargs in steps:
            item = getattr(self, name)(message_id, **kwargs)
        return item

    def wait_for_code(self, *, timeout: float = 60, q: str | None = None, since: str | None = None) -> str | None:
        """The first one-time code (``Codes[0]``) of the first new received message that
        matches ``q`` and holds one; None when ``timeout`` seconds pass first. New: after the
        events cursor ``since``, or, when None, arriving after this call (a mail that arrived
        within the server's event visibility lag before the call, 0.5 s by default, counts as
        new too: the event log does not show it yet). Messages without a code are passed over."""
        deadline = _core.monotonic() + timeout
        after = since
        if after is None:
            # Catch up to the end of the event log: only mail arriving from now on counts.
            while True:
                page = self.list_events(after=after, limit=100)
                after = page.get("next_cursor") or after
                if not page.get("has_more"):
                    break
        while True:
            page = self.list_events(after=after, wait=_core.wait_seconds(deadline))
            after = page.get("next_cursor") or after
            self.last_event_cursor = after
            for message_id in _core.received_ids(page, q):
                codes = self.get_message(message_id).get("Codes") or []
                if codes:
                    return str(codes[0])
            if not page.get("has_more") and _core.monotonic() >= deadline:
                return None

    def upload_attachment(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """Claim check then upload; returns the AttachmentID to pass in ``attachments``."""
        data, filename, content_type = _core.read_upload(path_or_bytes, filename, content_type)
        claim = self.create_attachment(filename, content_type, len(data), sha256=hashlib.sha256(data).hexdigest())
        request = _core.claim_upload_request(claim, data, content_type, filename)
        # Our own signed endpoint may want the token; a presigned S3 URL must not get it.
        headers = dict(self._auth) if _core.same_origin(request["url"], self.base_url) else {}
        headers.update(request.pop("headers", {}))
        try:
            response = self._http.request(**request, headers=headers, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise TransportError(f"upload failed: {exc}", cause=exc) from exc
        if not response.is_success:
            raise _core.error_from_response(response)
        return str(claim["AttachmentID"])
