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

_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|vs)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
SUBJECT_FALLBACK_WINDOW = dt.timedelta(days=30)


def normalize_subject(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject or "").strip().lower()


def thread_id_for(
    *, agent: Agent, message_id: str, in_reply_to: str, references: list[str], subject: str
) -> str:
    linked = [ref for ref in [in_reply_to, *reversed(references)] if ref]
    if linked:
        parent = (
            Message.objects.for_agent(agent)
            .filter(internet_message_id__in=linked)
            .exclude(thread_id="")
            .values_list("thread_id", flat=True)
            .first()
        )
        if parent:
            return parent
    elif subject and _REPLY_PREFIX.match(subject):
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
    if message_id:
        # A reply that arrived before this message may already name it in its headers.
        child = (
            Message.objects.for_agent(agent)
            .filter(in_reply_to=message_id)
            .exclude(thread_id="")
            .values_list("thread_id", flat=True)
            .first()
        )
        if child:
            return child
    return new_id("thr")


def thread_messages(*, agent: Agent, thread_id: str) -> Any:
    """GET /v1/threads/{id}: the agent's own messages of a thread, both directions. Held,
    blocked and quarantined mail is for staff, not the agent, as in the inbox."""
    return (
        Message.objects.for_agent(agent)
        .in_thread(thread_id)
        .filter(Q(direction=Message.Direction.OUTBOUND) | Q(disposition=Message.Disposition.INBOX))
    )
