"""Thread assignment: messages linked by Message-ID / In-Reply-To / References share a
ThreadID; a subject match is the fallback only when a reply carries no such headers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.db.models import Q
from django.utils import timezone

from assmbl.ids import new_id
from directory.models import Agent
from mail.models import Message

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
        threaded = Message.objects.filter(agent_id__in=agent_ids).exclude(thread_id="")
        # A message's own Message-ID too: the received copy of mail an agent sent itself.
        if linked or message_ids:
            for agent_pk, ref, *row in threaded.filter(internet_message_id__in=linked | message_ids).values_list(
                "agent_id", "internet_message_id", "received_at", "id", "thread_id"
            ):
                self._keep(self._by_message_id, (agent_pk, ref), tuple(row))
        if message_ids:
            for agent_pk, parent, *row in threaded.filter(in_reply_to__in=message_ids).values_list(
                "agent_id", "in_reply_to", "received_at", "id", "thread_id"
            ):
                self._keep(self._by_parent, (agent_pk, parent), tuple(row))

    @staticmethod
    def _keep(index: dict[tuple[int, str], _Row], key: tuple[int, str], row: Any) -> None:
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
        return new_id("thr")


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


def thread_messages(*, agent: Agent, thread_id: str) -> Any:
    """GET /v1/threads/{id}: the agent's own messages of a thread, both directions. Held,
    blocked and quarantined mail is for staff, not the agent, as in the inbox."""
    return (
        Message.objects.for_agent(agent)
        .in_thread(thread_id)
        .filter(Q(direction=Message.Direction.OUTBOUND) | Q(disposition=Message.Disposition.INBOX))
    )
