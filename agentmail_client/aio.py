"""The asyncio client: the same methods as ``AgentMailClient``, each a coroutine."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, cast

import httpx

from agentmail_client import _core
from agentmail_client._core import RequestSpec, RetryState
from agentmail_client.errors import TransportError
from agentmail_client.webhooks import verify_webhook

JSON = dict[str, Any]


class AsyncAgentMailClient(_core._Endpoints[Awaitable[JSON], Awaitable[bytes], Awaitable[None]]):
    """``AgentMailClient`` over ``httpx.AsyncClient``: ``await client.list_inbox(...)``;
    the iterators are async iterators (``async for page in client.iter_inbox_pages()``)."""

    verify_webhook = staticmethod(verify_webhook)

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._configure(base_url, token, timeout, max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAgentMailClient:
        return self

    async def __aexit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        await self.aclose()

    async def _call(self, spec: RequestSpec) -> Any:
        state = RetryState(spec, self.max_retries)
        while True:
            try:
                response = await self._http.request(
                    spec.method,
                    self.base_url + spec.path,
                    params=spec.params or None,
                    json=spec.json,
                    headers={**self._auth, **spec.headers},
                    follow_redirects=spec.follow_redirects,
                    timeout=self.timeout + spec.extra_timeout,
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(state.after_transport_error(exc))
                continue
            done, value = state.outcome(response)
            if done:
                return value
            await response.aclose()
            await asyncio.sleep(value)

    async def iter_inbox_pages(self, page_size: int = 50, **filters: Any) -> AsyncIterator[JSON]:
        cursor: str | None = None
        while True:
            page = await self.list_inbox(limit=page_size, cursor=cursor, **filters)
            yield page
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    async def iter_thread_pages(self, page_size: int = 50, **filters: Any) -> AsyncIterator[JSON]:
        cursor: str | None = None
        while True:
            page = await self.list_threads(limit=page_size, cursor=cursor, **filters)
            yield page
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    async def iter_sent_pages(self, page_size: int = 50, **filters: Any) -> AsyncIterator[JSON]:
        cursor: str | None = None
        while True:
            page = await self.list_sent(limit=page_size, cursor=cursor, **filters)
            yield page
            cursor = page.get("next_cursor")
            if not page.get("has_more") or not cursor:
                return

    async def iter_events(self, after: str | None = None, wait: int = 30) -> AsyncIterator[JSON]:
        while True:
            page = await self.list_events(after=after, wait=wait)
            after = page.get("next_cursor") or after
            self.last_event_cursor = after
            for event in page.get("items", []):
                yield event

    async def iter_event_stream(self, last_event_id: str | None = None) -> AsyncIterator[JSON]:
        """``AgentMailClient.iter_event_stream``: every event after ``last_event_id``, as it
        happens, reconnecting with ``Last-Event-ID`` after a drop; ``self.last_event_id``."""
        state = _core.StreamState(last_event_id)
        timeout = httpx.Timeout(self.timeout, read=_core.STREAM_READ_TIMEOUT)
        while True:
            try:
                async with self._http.stream(
                    "GET", self.base_url + _core.STREAM_PATH, headers=state.headers(self._auth), timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        await asyncio.sleep(state.refused(response))
                        continue
                    parser = _core.SseParser()
                    async for line in response.aiter_lines():
                        if (event := parser.feed(line)) is not None:
                            item = state.item(event)
                            self.last_event_id = state.last_event_id
                            yield item
            except httpx.TransportError:
                pass
            await asyncio.sleep(state.after_drop())

    async def wait_for_message(
        self, q: str | None = None, timeout: float = 60, after: str | None = None, *, new_only: bool = False
    ) -> JSON | None:
        """As ``AgentMailClient.wait_for_message``."""
        deadline = _core.monotonic() + timeout
        if new_only and after is None:
            after = await self._event_log_end()
        while True:
            page = await self.list_events(after=after, wait=_core.wait_seconds(deadline))
            after = page.get("next_cursor") or after
            self.last_event_cursor = after
            for event in page.get("items", []):
                if event.get("type") == "message.received" and _core.matches(event.get("data") or {}, q):
                    return cast(JSON, event["data"])
            if not page.get("has_more") and _core.monotonic() >= deadline:
                return None

    async def _event_log_end(self) -> str | None:
        after: str | None = None
        while True:
            page = await self.list_events(after=after, limit=100)
            after = page.get("next_cursor") or after
            if not page.get("has_more"):
                self.last_event_cursor = after
                return after

    async def update_message(
        self,
        message_id: str,
        *,
        add_labels: list[str] | None = None,
        remove_labels: list[str] | None = None,
        is_read: bool | None = None,
        archived: bool | None = None,
    ) -> JSON:
        """As ``AgentMailClient.update_message``."""
        steps = _core.update_steps(add_labels, remove_labels, is_read, archived)
        item: JSON = {}
        for name, kwargs in steps:
            item = await getattr(self, name)(message_id, **kwargs)
        return item

    async def wait_for_code(self, *, timeout: float = 60, q: str | None = None, since: str | None = None) -> str | None:
        """As ``AgentMailClient.wait_for_code``."""
        deadline = _core.monotonic() + timeout
        after = since
        if after is None:
            while True:
                page = await self.list_events(after=after, limit=100)
                after = page.get("next_cursor") or after
                if not page.get("has_more"):
                    break
        while True:
            page = await self.list_events(after=after, wait=_core.wait_seconds(deadline))
            after = page.get("next_cursor") or after
            self.last_event_cursor = after
            for message_id in _core.received_ids(page, q):
                codes = (await self.get_message(message_id)).get("Codes") or []
                if codes:
                    return str(codes[0])
            if not page.get("has_more") and _core.monotonic() >= deadline:
                return None

    async def upload_attachment(
        self,
        path_or_bytes: str | os.PathLike[str] | bytes,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        data, filename, content_type = _core.read_upload(path_or_bytes, filename, content_type)
        claim = await self.create_attachment(filename, content_type, len(data), sha256=hashlib.sha256(data).hexdigest())
        request = _core.claim_upload_request(claim, data, content_type, filename)
        headers = dict(self._auth) if _core.same_origin(request["url"], self.base_url) else {}
        headers.update(request.pop("headers", {}))
        try:
            response = await self._http.request(**request, headers=headers, timeout=self.timeout)
        except httpx.TransportError as exc:
            raise TransportError(f"upload failed: {exc}", cause=exc) from exc
        if not response.is_success:
            raise _core.error_from_response(response)
        return str(claim["AttachmentID"])
