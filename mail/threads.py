"""Thread assignment: messages linked by Message-ID / In-Reply-To / References share a
ThreadID; a subject match is the fallback only when a reply carries no such headers."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from assmbl.ids import new_id
from directory.models import Agent
from mail.addresses import address_bare
from mail.models import Message, MessageLabel, Thread
from mail.querysets import MessageQuerySet, ThreadQuerySet

# The prefixes mail clients put before a subject they answer or pass on: English, German
# (AW, WG), Scandinavian (SV) and Finnish (VS), with an optional count ("Re[2]:").
REPLY_PREFIXES = ("re", "aw", "sv", "vs")
FORWARD_PREFIXES = ("fw", "fwd", "wg")


def _prefix(words: tuple[str, ...]) -> str:
    return rf"\s*(?:{'|'.join(words)})\s*(?:\[\d+\])?\s*:\s*"


_REPLY_PREFIX = re.compile(rf"^(?:{_prefix(REPLY_PREFIXES + FORWARD_PREFIXES)})+", re.IGNORECASE)
_STARTS_AS_REPLY = re.compile(rf"^{_prefix(REPLY_PREFIXES)}", re.IGNORECASE)
_STARTS_AS_FORWARD = re.compile(rf"^{_prefix(FORWARD_PREFIXES)}", re.IGNORECASE)
SUBJECT_FALLBACK_WINDOW = dt.timedelta(days=30)


def normalize_subject(subject: str) -> str:
    """The subject without its reply and forward prefixes, for the subject fallback."""
    return _REPLY_PREFIX.sub("", subject or "").strip().lower()


def subject_reply(subject: str) -> str:
    """A reply's subject: "Re: " before it, unless it already starts as a reply."""
    return subject if _STARTS_AS_REPLY.match(subject) else f"Re: {subject}".strip()


def subject_forward(subject: str) -> str:
    """A forward's subject: "Fwd: " before it, unless it already starts as a forward."""
    return subject if _STARTS_AS_FORWARD.match(subject) else f"Fwd: {subject}".strip()


def thread_id_for(*, agent: Agent, message_id: str, in_reply_to: str, references: list[str], subject: str) -> str:
    links = ThreadLinks([(agent.pk, message_id, _linked(in_reply_to, references))])
    return links.thread_for(
        agent=agent, message_id=message_id, in_reply_to=in_reply_to, references=references, subject=subject
    )


def _linked(in_reply_to: str, references: list[str]) -> list[str]:
    return [ref for ref in [in_reply_to, *reversed(references)] if ref]


_Row = tuple[dt.datetime, str, str]  # (received_at, id, thread_id): the earliest row wins


class ThreadLinks:
    """The Message-ID links that thread assignment follows, for the mailboxes of a batch:
    loaded in two queries, then extended as the batch indexes each message, so that a reply
    indexed in the same batch as its parent joins its thread."""

    def __init__(self, wanted: list[tuple[int, str, list[str]]]) -> None:
        """``wanted``: (agent pk, Message-ID, linked ids) of each message to be threaded."""
        agent_ids = {agent_pk for agent_pk, _, _ in wanted}
        linked = {ref for _, _, refs in wanted for ref in refs}
        message_ids = {message_id for _, message_id, _ in wanted if message_id}
        # Message-ID -> the earliest message carrying it; In-Reply-To -> the earliest reply.
        self._by_message_id: dict[tuple[int, str], _Row] = {}
        self._by_parent: dict[tuple[int, str], _Row] = {}
        # The ThreadIDs made for this batch: threads no other transaction can know yet.
        self.minted: set[str] = set()
        threaded = Message.objects.filter(agent_id__in=agent_ids).exclude(thread_id="")
        # A message's own Message-ID too: the received copy of mail an agent sent itself.
        if linked or message_ids:
            for agent_pk, ref, received_at, pk, thread_id in threaded.filter(
                internet_message_id__in=linked | message_ids
            ).values_list("agent_id", "internet_message_id", "received_at", "id", "thread_id"):
                self._keep(self._by_message_id, (agent_pk, ref), (received_at, pk, thread_id))
        if message_ids:
            for agent_pk, parent, received_at, pk, thread_id in threaded.filter(
                in_reply_to__in=message_ids
            ).values_list("agent_id", "in_reply_to", "received_at", "id", "thread_id"):
                self._keep(self._by_parent, (agent_pk, parent), (received_at, pk, thread_id))

    @staticmethod
    def _keep(index: dict[tuple[int, str], _Row], key: tuple[int, str], row: _Row) -> None:
        if key not in index or row[:2] < index[key][:2]:
            index[key] = row

    def add(self, message: Message) -> None:
        """Record a message just indexed, for the rest of the batch."""
        if not message.thread_id:
            return
        row = (message.received_at, message.id, message.thread_id)
        if message.internet_message_id:
            self._keep(self._by_message_id, (message.agent_id, message.internet_message_id), row)
        if message.in_reply_to:
            self._keep(self._by_parent, (message.agent_id, message.in_reply_to), row)

    def thread_for(
        self, *, agent: Agent, message_id: str, in_reply_to: str, references: list[str], subject: str
    ) -> str:
        if message_id and (agent.pk, message_id) in self._by_message_id:
            # Another copy of this very message is in the mailbox (the agent sent it to
            # itself, or it arrived twice by different routes): one message, one thread.
            return self._by_message_id[(agent.pk, message_id)][2]
        linked = _linked(in_reply_to, references)
        if linked:
            parents = [self._by_message_id[(agent.pk, ref)] for ref in linked if (agent.pk, ref) in self._by_message_id]
            if parents:
                return min(parents)[2]
        elif subject and _REPLY_PREFIX.match(subject):
            thread_id = _thread_by_subject(agent, subject)
            if thread_id:
                return thread_id
        if message_id and (agent.pk, message_id) in self._by_parent:
            # A reply that arrived before this message may already name it in its headers.
            return self._by_parent[(agent.pk, message_id)][2]
        thread_id = new_id("thr")
        self.minted.add(thread_id)
        return thread_id


def _thread_by_subject(agent: Agent, subject: str) -> str:
    """The fallback for a reply without In-Reply-To/References: a recent message whose
    subject is the same once Re:/Fwd: prefixes are stripped."""
    base = normalize_subject(subject)
    since = timezone.now() - SUBJECT_FALLBACK_WINDOW
    candidates = (
        Message.objects.for_agent(agent)
        .filter(received_at__gte=since, subject__iendswith=base)
        .exclude(thread_id="")
        .order_by("-received_at")
        .values_list("thread_id", "subject")[:20]
    )
    for thread_id, candidate_subject in candidates:
        if normalize_subject(candidate_subject) == base:
            return thread_id
    return ""


# The messages of a thread its agent sees: what GET /v1/threads/{id} lists and a Thread row sums.
_VISIBLE = Q(direction="outbound") | Q(disposition="inbox")
_VISIBLE_LABEL = Q(message__direction="outbound") | Q(message__disposition="inbox")
MAX_PARTICIPANTS = 50

ThreadKey = tuple[int, str]  # (agent pk, ThreadID)


def threads_filtered(
    *,
    agent: Agent,
    label: str | None = None,
    is_read: bool | None = None,
    include_archived: bool = False,
    q: str | None = None,
) -> ThreadQuerySet[Thread]:
    """GET /v1/threads: the agent's threads that pass every filter (AND). A thread passes
    ``label`` and ``q`` when one of its messages does (the inbox's search, through
    ``MessageQuerySet.search``); ``is_read=false`` keeps threads with an unread message."""
    threads = Thread.objects.for_agent(agent)
    if not include_archived:
        threads = threads.not_archived()
    if is_read is True:
        threads = threads.read()
    elif is_read is False:
        threads = threads.unread()
    visible = Message.objects.for_agent(agent).filter(_VISIBLE)
    if label is not None:
        threads = threads.containing(visible.with_label(label))
    if q is not None:
        threads = threads.containing(visible.search(q))
    return threads


def thread_messages(*, agent: Agent, thread_id: str) -> MessageQuerySet[Message]:
    """GET /v1/threads/{id}: the agent's own messages of a thread, both directions. Held,
    blocked and quarantined mail is for staff, not the agent, as in the inbox."""
    return Message.objects.for_agent(agent).in_thread(thread_id).filter(_VISIBLE)


@dataclass
class _Summary:
    """A Thread row's values, summed over its visible messages in listing order."""

    subject: str
    first_at: dt.datetime
    last_at: dt.datetime = field(init=False)
    last_id: str = ""
    last_preview: str = ""
    count: int = 0
    # A message that may carry labels: one not among threads_refresh's ``unlabelled``.
    labelled: bool = False
    unread: int = 0
    active: int = 0
    participants: dict[str, None] = field(default_factory=dict)

    def add(self, row: tuple[Any, ...]) -> None:
        message_id, received_at, _, preview, sender, to, cc, direction, is_read, archived = row
        self.last_at, self.last_id, self.last_preview = received_at, message_id, preview
        self.count += 1
        self.active += not archived
        self.unread += _counts_unread(direction, is_read, archived)
        for address in [sender, *(to or []), *(cc or [])]:
            if len(self.participants) >= MAX_PARTICIPANTS:
                break
            bare = _bare(address) if isinstance(address, str) else ""
            if bare:
                self.participants.setdefault(bare, None)


def _counts_unread(direction: str, is_read: bool, archived: bool) -> bool:
    """A visible message in its thread's unread count (the inbox's unread count, per thread)."""
    return direction == "inbound" and not is_read and not archived


def _visible(message: Message) -> bool:
    """_VISIBLE of one message in hand."""
    return message.direction == "outbound" or message.disposition == "inbox"


# The same few correspondents recur in every batch; parseaddr costs ~10 us an address.
_bare = functools.lru_cache(maxsize=4096)(address_bare)

_MESSAGE_COLUMNS = (
    "agent_id", "thread_id", "id", "received_at", "subject", "body_preview", "sender", "to", "cc", "direction",
    "is_read", "archived",
)  # fmt: skip


def threads_refresh(
    *, keys: Iterable[ThreadKey], unlabelled: Iterable[str] = (), minted: Iterable[Message] = ()
) -> None:
    """Rewrite the Thread rows of ``keys`` from their messages, in the caller's transaction:
    every write path that adds, changes or removes a message the agent sees calls this once
    for all the threads it touched (ingest once a batch). A thread left without a visible
    message loses its row. ``unlabelled``: ids of messages known to carry no label (indexed
    just now): a thread of only such messages needs no read of label rows. ``minted``: the
    visible messages of threads this transaction created (``ThreadLinks.minted``): no other
    transaction can know such a thread before this one commits, and these are all its
    messages, so its row is summed from them without a lock or a read (most of ingest)."""
    known: dict[ThreadKey, list[tuple[Any, ...]]] = {}
    for message in sorted(minted, key=lambda m: (m.received_at, m.pk)):
        known.setdefault((message.agent_id, message.thread_id), []).append(
            tuple(getattr(message, column) for column in _MESSAGE_COLUMNS[2:])
        )
    with transaction.atomic(using=router.db_for_write(Thread), savepoint=False):
        _refresh(
            {key for key in keys if key[1]},
            models=(Message, MessageLabel, Thread),
            lock=True,
            unlabelled=set(unlabelled),
            known=known,
        )


def threads_shift(
    *, before: Iterable[Message], is_read: bool | None = None, relabelled: Iterable[Message] = ()
) -> None:
    """The Thread rows after a change of read state and labels that moved no message in or
    out of a thread, in the caller's transaction: ``before`` are the messages whose read
    state became ``is_read``, as they were (locked by the caller, so what they were is what
    changed); ``relabelled`` those whose labels changed. A read state moves its thread's
    unread count and a label its label set, nothing else of the row, so the rows are
    shifted instead of summed again from every message of their threads (threads_refresh).
    Under the threads' advisory lock (_lock): a refresh that summed a thread before this
    transaction's change commits wrote a row this shift then applies to, and one after it
    reads the change. A thread without a row yet gets one from threads_refresh."""
    unread: dict[ThreadKey, int] = {}
    for message in before:
        key = (message.agent_id, message.thread_id)
        if is_read is not None and key[1] and _visible(message):
            was = _counts_unread(message.direction, message.is_read, message.archived)
            now = _counts_unread(message.direction, is_read, message.archived)
            unread[key] = unread.get(key, 0) + now - was
    relabel = {(m.agent_id, m.thread_id) for m in relabelled if m.thread_id and _visible(m)}
    keys = {key for key, delta in unread.items() if delta} | relabel
    if not keys:
        return
    using = router.db_for_write(Thread)
    with transaction.atomic(using=using, savepoint=False):
        _lock(keys, using)
        labels = _labels(relabel, MessageLabel)
        # One UPDATE per distinct change: a batch's threads mostly share theirs.
        groups: dict[tuple[int, tuple[str, ...] | None], list[ThreadKey]] = {}
        for key in keys:
            names = tuple(sorted(labels.get(key, ()))) if key in relabel else None
            groups.setdefault((unread.get(key, 0), names), []).append(key)
        missing: set[ThreadKey] = set()
        for (delta, names), group in groups.items():
            change: dict[str, Any] = {} if names is None else {"labels": list(names)}
            if delta:
                change["unread_count"] = F("unread_count") + delta
            if Thread.objects.filter(_any_of(group)).update(**change) < len(group):
                missing.update(group)
        _refresh(missing, models=(Message, MessageLabel, Thread), lock=False)


def _any_of(keys: Iterable[ThreadKey]) -> Q:
    by_agent: dict[int, list[str]] = {}
    for agent_id, thread_id in keys:
        by_agent.setdefault(agent_id, []).append(thread_id)
    condition = Q()
    for agent_id, thread_ids in by_agent.items():
        condition |= Q(agent_id=agent_id, thread_id__in=thread_ids)
    return condition


def threads_backfill(*, message_model: Any, label_model: Any, thread_model: Any, batch: int = 500) -> int:
    """Write the Thread rows of every thread (the data migration, with its historical
    models). Returns how many threads it wrote."""
    pairs = (
        message_model.objects.filter(_VISIBLE)
        .exclude(thread_id="")
        .values_list("agent_id", "thread_id")
        .distinct()
        .order_by("agent_id", "thread_id")
    )
    done = 0
    chunk: list[ThreadKey] = []
    for pair in pairs.iterator(chunk_size=batch):
        chunk.append(pair)
        if len(chunk) == batch:
            _refresh(set(chunk), models=(message_model, label_model, thread_model), lock=False)
            done, chunk = done + len(chunk), []
    _refresh(set(chunk), models=(message_model, label_model, thread_model), lock=False)
    return done + len(chunk)


def _lock(keys: set[ThreadKey], using: str) -> None:
    """Serialise refreshes of one thread (PostgreSQL): two transactions that each add a
    message and each sum the thread without the other's would leave the later commit's
    stale sum. A transaction-scoped advisory lock per thread, taken in a fixed order (no
    deadlock between two batches) also covers a thread that has no row yet. SQLite
    serialises writers already."""
    connection = connections[using]
    if connection.vendor != "postgresql" or not keys:
        return
    locks = sorted(
        int.from_bytes(hashlib.blake2b(f"thread:{a}:{t}".encode(), digest_size=8).digest(), "big", signed=True)
        for a, t in keys
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(k) FROM UNNEST(%s::bigint[]) AS k", [locks])


def _summaries(keys: set[ThreadKey], message_model: Any, unlabelled: AbstractSet[str]) -> dict[ThreadKey, _Summary]:
    agent_ids, thread_ids = {a for a, _ in keys}, {t for _, t in keys}
    rows = (
        message_model.objects.filter(agent_id__in=agent_ids, thread_id__in=thread_ids)
        .filter(_VISIBLE)
        .order_by("received_at", "id")
        .values_list(*_MESSAGE_COLUMNS)
    )
    summaries: dict[ThreadKey, _Summary] = {}
    for agent_id, thread_id, *row in rows:
        key = (agent_id, thread_id)
        if key in keys:
            if key not in summaries:
                summaries[key] = _Summary(subject=row[2], first_at=row[1])
            summaries[key].add(tuple(row))
            summaries[key].labelled |= row[0] not in unlabelled
    return summaries


def _labels(keys: set[ThreadKey], label_model: Any) -> dict[ThreadKey, set[str]]:
    """The label names of each thread's visible messages (threads without any are left out).
    The messages are found by their own agent and thread (mail_message_agent_thread), then
    their label rows by message: the label rows' copy of the agent alone would walk every
    label row of the mailbox and look up each one's message."""
    labels: dict[ThreadKey, set[str]] = {}
    if not keys:
        return labels
    agent_ids, thread_ids = {a for a, _ in keys}, {t for _, t in keys}
    for agent_id, thread_id, name in (
        label_model.objects.filter(message__agent_id__in=agent_ids, message__thread_id__in=thread_ids)
        .filter(_VISIBLE_LABEL)
        .values_list("message__agent_id", "message__thread_id", "name")
    ):
        if (agent_id, thread_id) in keys:
            labels.setdefault((agent_id, thread_id), set()).add(name)
    return labels


def _refresh(
    keys: set[ThreadKey],
    *,
    models: tuple[Any, Any, Any],
    lock: bool,
    unlabelled: AbstractSet[str] = frozenset(),
    known: dict[ThreadKey, list[tuple[Any, ...]]] | None = None,
) -> None:
    """``known``: the rows (_MESSAGE_COLUMNS but the key) of threads summed without a read."""
    if not keys:
        return
    message_model, label_model, thread_model = models
    using = router.db_for_write(thread_model)
    known = {key: rows for key, rows in (known or {}).items() if key in keys}
    read = keys - known.keys()
    if lock:
        _lock(read, using)
    summaries = _summaries(read, message_model, unlabelled) if read else {}
    for key, rows in known.items():
        summaries[key] = _Summary(subject=rows[0][2], first_at=rows[0][1])
        for row in rows:
            summaries[key].add(row)
    labels = _labels({key for key, summary in summaries.items() if summary.labelled}, label_model)
    if summaries:
        values = [_row(key, summary, labels.get(key, set())) for key, summary in summaries.items()]
        if connections[using].vendor == "postgresql":
            _upsert_postgres(thread_model, values, using)
        else:
            thread_model.objects.bulk_create(
                [thread_model(**row) for row in values],
                update_conflicts=True,
                unique_fields=["agent", "thread_id"],
                update_fields=_ROW_FIELDS,
            )
    gone = keys - summaries.keys()
    if gone:
        condition = Q()
        for agent_id, thread_id in gone:
            condition |= Q(agent_id=agent_id, thread_id=thread_id)
        thread_model.objects.filter(condition).delete()


_ROW_FIELDS = [
    "subject", "participants", "labels", "message_count", "unread_count", "archived", "first_message_at",
    "last_message_at", "last_message_id", "last_message_preview",
]  # fmt: skip


_ARRAY_TYPES = {
    "agent": "bigint", "thread_id": "varchar", "subject": "text", "participants": "jsonb", "labels": "jsonb",
    "message_count": "integer", "unread_count": "integer", "archived": "boolean", "first_message_at": "timestamptz",
    "last_message_at": "timestamptz", "last_message_id": "varchar", "last_message_preview": "varchar",
}  # fmt: skip


def _upsert_postgres(thread_model: Any, rows: list[dict[str, Any]], using: str) -> None:
    """The rows in one INSERT ... ON CONFLICT from arrays: bulk_create(update_conflicts=...)
    builds a model a row and prepares each of a batch's 1,200 values through the ORM, which
    cost ingest more CPU than the statement does (bench/HISTORY.md, threads)."""
    connection = connections[using]
    meta = thread_model._meta
    fields = [meta.get_field(name) for name in _ARRAY_TYPES]
    columns = [connection.ops.quote_name(f.column) for f in fields]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[2:])
    arrays = ", ".join(f"%s::{kind}[]" for kind in _ARRAY_TYPES.values())
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(columns)}) "
        f"SELECT * FROM UNNEST({arrays}) ON CONFLICT ({columns[0]}, {columns[1]}) DO UPDATE SET {updates}"
    )
    values = [[row[f.attname] for row in rows] for f in fields]
    for i, name in enumerate(_ARRAY_TYPES):
        if _ARRAY_TYPES[name] == "jsonb":
            values[i] = [json.dumps(v) for v in values[i]]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def _row(key: ThreadKey, summary: _Summary, labels: set[str]) -> dict[str, Any]:
    """A Thread row's values by attname."""
    return {
        "agent_id": key[0],
        "thread_id": key[1],
        "subject": summary.subject,
        "participants": list(summary.participants),
        "labels": sorted(labels),
        "message_count": summary.count,
        "unread_count": summary.unread,
        "archived": summary.active == 0,
        "first_message_at": summary.first_at,
        "last_message_at": summary.last_at,
        "last_message_id": summary.last_id,
        "last_message_preview": summary.last_preview,
    }
