"""The local SMTP listener (aiosmtpd): accepts mail for our agents and hands the bytes to
the ingestion pipeline. 250 is sent only after the durable store has committed. This is
the receiving port's handler and controller; the session (both ports) is
``mail.smtp_session``, the agents' submission port ``mail.smtp_submission``.

Two things make it fast without weakening that promise:

- **Group commit.** Concurrent sessions' DATA commands queue up for one committer, which
  stores everything waiting (up to ``SMTP_GROUP_COMMIT_MAX``) with ``deliveries_accept``:
  one transaction, one durable commit per group instead of per mail, and one processing
  task per batch of commits (see ``GroupCommitter``). Each
  session is answered after the commit that holds its delivery: 250 when it committed,
  451 to every session of the group when it did not (nothing of that group is stored).
- **Lookup cache.** A recipient that resolved to an active agent, and a sender that was not
  blocked for that agent, are remembered for ``SMTP_LOOKUP_CACHE_MS`` per process, so a
  known RCPT is answered on the event loop without a database round trip. Only "accept"
  answers are cached, never a refusal: within the window a newly blocked sender or a
  deactivated agent may still get a 250, and the worker, which checks both again at
  indexing time, stores it as blocked or as an unknown recipient. A new agent or an
  unblocked sender is never refused because of the cache.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections, connections

from directory.models import Agent
from mail.addresses import agent_for_address
from mail.authn import (
    authentication_check,
    authentication_relayed,
    header_block,
    header_from_address,
)
from mail.headers import header_block_end
from mail.ingest import Arrival, accepted_pending, deliveries_accept, deliveries_queue
from mail.models import InboundDelivery
from mail.smtp_session import REPLY_RECIPIENT_OK, IngestSMTP, ListenerController, ListenerHandler
from mail.smtp_tls import received_header, tls_description
from mail.storage import raw_store_early
from mail.trust import agent_blocks_anyone, sender_blocked

log = logging.getLogger(__name__)

REPLY_QUEUED = "250 2.0.0 OK: queued"
REPLY_STORE_FAILED = "451 4.3.0 Temporary failure storing the message; try again"
REPLY_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
# Bounds the memory of the cache against a flood of distinct senders.
CACHE_MAX_ENTRIES = 10_000
# The longest header block the event loop parses itself (``_data_check_cached``): about a
# millisecond of parsing, during which no other session is served.
LOOP_HEADER_MAX = 64 * 1024
# How often an executor thread re-checks its persistent connection (age, health ping).
CONNECTION_CHECK_SECONDS = 1.0

T = TypeVar("T")
_thread = threading.local()


def db_job(fn: Callable[..., T]) -> Callable[..., T]:
    """Database hygiene for work done in the listener's threads, which have no request
    boundaries. With ``CONN_MAX_AGE`` > 0 a thread keeps its connection and checks it (age,
    health ping) at most once a second instead of on every RCPT; a job that failed drops a
    broken connection at once (PostgreSQL restarted: the next job reconnects). With 0,
    every job closes its connection, as Django does after a request."""

    @functools.wraps(fn)
    def job(*args: Any) -> T:
        now = time.monotonic()
        if now >= getattr(_thread, "next_check", 0.0):
            close_old_connections()
            _thread.next_check = now + CONNECTION_CHECK_SECONDS
        try:
            return fn(*args)
        except Exception:
            close_old_connections()
            _thread.next_check = 0.0
            raise
        finally:
            if not connections["default"].settings_dict.get("CONN_MAX_AGE"):
                close_old_connections()

    return job


class AcceptCache:
    """Positive lookups (active agent by address, "not blocked" by agent and sender) for a
    few seconds, shared by the event loop and the executor threads of one listener."""

    def __init__(self) -> None:
        self._agents: dict[str, tuple[float, Agent]] = {}
        self._allowed: dict[tuple[int, str], float] = {}
        self._open: dict[int, float] = {}  # agents for whom nobody is blocked
        self._lock = threading.Lock()

    @staticmethod
    def _ttl() -> float:
        return settings.SMTP_LOOKUP_CACHE_MS / 1000

    def agent(self, address: str) -> Agent | None:
        hit = self._agents.get(address.strip().lower())
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def blocks_nobody(self, agent: Agent) -> bool:
        return self._open.get(agent.pk, 0.0) > time.monotonic()

    def allowed(self, agent: Agent, sender: str) -> bool:
        now = time.monotonic()
        if self._open.get(agent.pk, 0.0) > now:
            return True
        expires = self._allowed.get((agent.pk, sender.strip().lower()))
        return expires is not None and expires > now

    def _remember(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` for the window (nothing when the cache is off);
        a full table starts over rather than growing without bound."""
        if self._ttl() <= 0:
            return
        with self._lock:
            if len(table) >= CACHE_MAX_ENTRIES:
                table.clear()
            table[key] = value(time.monotonic() + self._ttl())

    def remember_agent(self, address: str, agent: Agent) -> None:
        self._remember(self._agents, address.strip().lower(), lambda expires: (expires, agent))

    def remember_allowed(self, agent: Agent, sender: str) -> None:
        self._remember(self._allowed, (agent.pk, sender.strip().lower()), lambda expires: expires)

    def remember_open(self, agent: Agent) -> None:
        self._remember(self._open, agent.pk, lambda expires: expires)

    # Blocking (database) versions, for executor threads.

    def agent_lookup(self, address: str) -> Agent | None:
        agent = self.agent(address)
        if agent is None:
            agent = agent_for_address(address)
            if agent is not None:
                self.remember_agent(address, agent)
        return agent

    def blocked_reason(self, agent: Agent, sender: str) -> str:
        if not sender or self.allowed(agent, sender):
            return ""
        if self._ttl() > 0 and not agent_blocks_anyone(agent):
            self.remember_open(agent)
            return ""
        reason = sender_blocked(agent=agent, sender=sender)
        if not reason:
            self.remember_allowed(agent, sender)
        return reason


@db_job
def _rcpt_check(cache: AcceptCache, address: str, mail_from: str) -> str:
    """The refusal for one RCPT TO, or "" to accept it."""
    agent = cache.agent_lookup(address)
    if agent is None:
        return f"550 5.1.1 <{address}>: no such mailbox here"
    # MAIL FROM can differ from the header From; DATA checks that one too.
    reason = cache.blocked_reason(agent, mail_from)
    return f"550 5.7.1 {reason}" if reason else ""


def _rcpt_check_cached(cache: AcceptCache, address: str, mail_from: str) -> bool:
    """True when the cache alone says RCPT is acceptable (no database, no thread hop)."""
    agent = cache.agent(address)
    return agent is not None and (not mail_from or cache.allowed(agent, mail_from))


def _data_check_cached(
    cache: AcceptCache, raw: bytes, rcpt_tos: list[str], peer_ip: str
) -> tuple[str, dict[str, Any]] | None:
    """``_data_check`` on the event loop, when it needs neither the database nor DNS:
    every recipient is cached, its header From needs no check or is cached as allowed,
    and a trusted relay's Authentication-Results gives the verdict (the usual case behind
    a front MTA). Returns ("", the verdict), or None to run ``_data_check`` in a thread.
    A refusal always comes from the thread: nothing here refuses.

    Saves a thread hop per mail, which on a busy listener costs more than the checks."""
    agents = [cache.agent(rcpt) for rcpt in rcpt_tos]
    if not agents or any(agent is None for agent in agents):
        return None
    if header_block_end(raw, LOOP_HEADER_MAX) is None:
        return None  # a header block this long (or none) is parsed in a thread
    headers = header_block(raw)
    known = cast("list[Agent]", agents)  # none is None (above)
    if not all(cache.blocks_nobody(agent) for agent in known):
        header_from = header_from_address(headers)
        if header_from and not all(cache.allowed(agent, header_from) for agent in known):
            return None
    try:
        relayed = authentication_relayed(headers, peer_ip=peer_ip)
    except Exception:
        return None  # the thread's check logs it and runs the local checks
    return None if relayed is None else ("", relayed)


@db_job
def _data_check(
    cache: AcceptCache, raw: bytes, mail_from: str, rcpt_tos: list[str], peer_ip: str, helo: str
) -> tuple[str, dict[str, Any] | None, tuple[str, str] | None]:
    """(refusal, None, None) when the header From is blocked by every recipient; otherwise
    ("", the SPF/DKIM verdict, (key, sha256) of the bytes already written to storage, or None). DNS
    with short timeouts: this runs in an executor thread, many in parallel."""
    agents = [cache.agent_lookup(rcpt) for rcpt in rcpt_tos]
    headers = header_block(raw)
    # When every recipient blocks nobody (the cached answer), the From need not be checked.
    header_from = "" if all(a is None or cache.blocks_nobody(a) for a in agents) else header_from_address(headers)
    if header_from:
        reasons = [cache.blocked_reason(agent, header_from) if agent is not None else "" for agent in agents]
        if reasons and all(reasons):
            return f"550 5.7.1 {reasons[0]}", None, None
    authentication = authentication_check(raw=raw, peer_ip=peer_ip, helo=helo, mail_from=mail_from, headers=headers)
    # Where writes gain from running in parallel (S3), the object write here, in parallel
    # threads, rather than one after another in the committer, which is then told where
    # they are and only records them; locally the committer appends it to the group's pack.
    return "", authentication, raw_store_early(raw)


@db_job
def _store_group(arrivals: list[Arrival]) -> list[str]:
    """One transaction and one durable commit for the whole group (committer thread).
    Returns the deliveries to queue for processing."""
    return accepted_pending(deliveries_accept(arrivals, queue=False))


def _queue_batch(delivery_ids: list[str]) -> None:
    try:
        deliveries_queue(delivery_ids)
    except Exception:
        # They are committed and answered 250: the periodic sweep processes them instead.
        log.exception("could not queue %d stored deliveries; the sweep will", len(delivery_ids))


class GroupCommitter:
    """Collects the DATA commands of concurrent sessions and commits them together.

    One committer per listener: while a group commits in the committer thread, the next
    sessions queue up, so the group size follows the load (1 when idle, no added latency
    unless ``SMTP_GROUP_COMMIT_WAIT_MS`` asks for it).

    Processing is queued per batch of commits, not per commit: a worker's cost per mail
    halves from batches of ~10 to batches of 100 (bench/ingest.py --batch). The batch is
    queued when it holds ``SMTP_PROCESS_BATCH_MAX`` deliveries, or when its first delivery
    has waited ``SMTP_PROCESS_BATCH_WAIT_MS``, or at once when no session is waiting to commit
    and the previous batch went out longer than that ago (a lone mail after a quiet spell).
    Sessions that come one after another (a relaying MTA, a test suite) never overlap, so
    without that last condition each of their mails would be a task of its own, whose fixed
    cost (~45 ms of a worker against ~3 ms a mail in a batch of 15) falls behind at ~20
    sessions a second; within a stream they share the window's batch instead."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[Arrival, asyncio.Future[str]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtp-commit")
        self._batch: list[str] = []
        self._batch_since = 0.0
        self._queued_at = float("-inf")

    async def store(self, arrival: Arrival) -> str:
        """Queue one arrival; returns its reply once its group has committed (or failed)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:  # first use, or a restarted controller
            self._loop, self._queue, self._task = loop, asyncio.Queue(), None
        if self._task is None or self._task.done():
            # First use, or the committer died of a bug: what is queued is still answered.
            self._task = loop.create_task(self._run())
        reply: asyncio.Future[str] = loop.create_future()
        self._queue.put_nowait((arrival, reply))
        return await reply

    async def _next_group(self) -> list[tuple[Arrival, asyncio.Future[str]]] | None:
        """The next group, or None when a held batch's window closed first (queue it)."""
        assert self._queue is not None and self._loop is not None
        if not self._batch:
            first = await self._queue.get()
        else:
            window = self._batch_since + settings.SMTP_PROCESS_BATCH_WAIT_MS / 1000 - self._loop.time()
            try:
                first = await asyncio.wait_for(self._queue.get(), max(window, 0))
            except TimeoutError:
                return None
        group = [first]
        limit = settings.SMTP_GROUP_COMMIT_MAX
        deadline = self._loop.time() + settings.SMTP_GROUP_COMMIT_WAIT_MS / 1000
        while len(group) < limit:
            try:
                group.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                break
            try:
                group.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return group

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = await self._next_group()
            if group is None:
                await self._queue_held(loop)
                continue
            try:
                pending = await loop.run_in_executor(self._executor, _store_group, [arrival for arrival, _ in group])
                reply = REPLY_QUEUED
            except Exception:
                # The transaction rolled back: nothing of this group is stored, and every
                # session of it is told to retry.
                log.exception("could not store a group of %d incoming messages", len(group))
                pending, reply = [], REPLY_STORE_FAILED
            if pending and not self._batch:
                self._batch_since = loop.time()
            self._batch += pending
            window = settings.SMTP_PROCESS_BATCH_WAIT_MS / 1000
            if self._batch and (
                len(self._batch) >= settings.SMTP_PROCESS_BATCH_MAX
                or loop.time() - self._batch_since >= window
                or ((self._queue is None or self._queue.empty()) and loop.time() - self._queued_at >= window)
            ):
                # Queued before the replies, as for a lone mail: its sender's 250
                # then also means "on its way to the inbox" (and, with eager tasks, "there").
                await self._queue_held(loop)
            for _, future in group:
                if not future.done():  # a session that hung up meanwhile
                    future.set_result(reply)

    async def _queue_held(self, loop: asyncio.AbstractEventLoop) -> None:
        # Cleared only once queued: a batch cut short by shutdown is queued by it.
        batch = self._batch
        await loop.run_in_executor(self._executor, _queue_batch, batch)
        del self._batch[: len(batch)]
        self._queued_at = loop.time()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._batch:  # committed and answered: queue them now rather than at the next sweep
            _queue_batch(list(dict.fromkeys(self._batch)))
            self._batch = []


class IngestHandler(ListenerHandler):
    """aiosmtpd handler. Database work runs in executor threads so the event loop keeps
    serving other sessions while one waits on a query or a commit."""

    def __init__(self) -> None:
        self.cache = AcceptCache()
        # RCPT and DATA checks wait on the database and on DNS (SPF, DKIM: tens of ms per
        # lookup on a real resolver) far more than they compute, so they get their own pool,
        # larger than asyncio's default of cores + 4, which would cap a listener doing real
        # DNS at a few sessions checking at once.
        self.checks = ThreadPoolExecutor(max_workers=settings.SMTP_CHECK_THREADS, thread_name_prefix="smtp-check")
        self.committer = GroupCommitter()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        # RFC 5321 4.5.3.1.10: 452, a temporary refusal (the client sends these recipients
        # in another transaction). Before the lookup: recipients past the limit cost nothing.
        if len(envelope.rcpt_tos) >= settings.SMTP_MAX_RECIPIENTS:
            return REPLY_TOO_MANY_RECIPIENTS
        mail_from = envelope.mail_from or ""
        if not _rcpt_check_cached(self.cache, address, mail_from):
            loop = asyncio.get_running_loop()
            try:
                refusal = await loop.run_in_executor(self.checks, _rcpt_check, self.cache, address, mail_from)
            except Exception:
                # The database is down (restart, failover): a 5xx here would make the sender
                # bounce the mail; a 4xx makes it retry later, as RFC 5321 intends.
                log.exception("could not look up recipient %s", address)
                return "451 4.3.0 Temporary failure looking up the recipient; try again"
            if refusal:
                return refusal
        envelope.rcpt_tos.append(address)
        return REPLY_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw: bytes | str = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        peer_ip = session.peer[0] if isinstance(session.peer, tuple) else ""
        if session.ssl is not None:
            # As MTAs do: how the mail came in (TLS version, cipher) travels with it.
            tls = tls_description(session.ssl)
            raw = received_header(helo=session.host_name or "", peer_ip=peer_ip, tls=tls, protocol="ESMTPS") + raw
        mail_from, rcpt_tos = envelope.mail_from or "", list(envelope.rcpt_tos)
        checked = _data_check_cached(self.cache, raw, rcpt_tos, peer_ip)
        authentication: dict[str, Any] | None
        if checked is not None:
            # The committer writes the object with its group (``stored`` None).
            (refusal, authentication), stored = checked, None
        else:
            try:
                refusal, authentication, stored = await loop.run_in_executor(
                    self.checks, _data_check, self.cache, raw, mail_from, rcpt_tos, peer_ip, session.host_name or ""
                )
            except Exception:
                log.exception("could not check an incoming message")
                return REPLY_STORE_FAILED
        if refusal:
            return refusal
        arrival = Arrival(
            raw=raw,
            source=InboundDelivery.Source.SMTP,
            envelope_recipients=rcpt_tos,
            envelope_from=mail_from,
            authentication=authentication,
            stored=stored,
        )
        return await self.committer.store(arrival)


class IngestController(ListenerController):
    """The receiving port: mail for the agents, from anyone."""

    handler: IngestHandler

    def factory(self) -> SMTP:
        return IngestSMTP(self.handler, ident="Assmbl Mail", **self.session_options())

    def stop(self, no_assert: bool = False) -> None:
        super().stop(no_assert=no_assert)
        self.handler.committer.shutdown()
        self.handler.checks.shutdown(wait=True, cancel_futures=True)


def smtp_controller(host: str, port: int, **kwargs: Any) -> IngestController:
    return IngestController(IngestHandler(), hostname=host, port=port, **kwargs)
