"""Drafts: a message an agent writes now and sends later (``/v1/drafts``).

A draft holds the send body, its addresses checked as they are given; what only a send can
check (a recipient, the attachments, the policy) is checked by ``draft_send``, which hands
the draft to ``mail.sending.message_send`` (the one way out, governed by the agent's
outbound policy) and records the message on the draft in the same transaction: a draft is
sent once, and stays readable with its MessageID.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from assmbl import domain
from directory.models import Agent
from mail.models import Draft, Message
from mail.outbound import send_at_clean
from mail.sending import Outgoing, addresses_clean, message_send, reply_recipients, reply_threading
from mail.threads import subject_reply

_ADDRESS_FIELDS = ("to", "cc", "bcc", "reply_to")
_PLAIN_FIELDS = ("subject", "body", "html", "headers", "send_at")


def draft_get(*, agent: Agent, draft_id: str, for_update: bool = False) -> Draft:
    # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the in_reply_to join.
    drafts = Draft.objects.select_for_update(of=("self",)) if for_update else Draft.objects.all()
    draft = drafts.select_related("in_reply_to").filter(agent=agent, pk=draft_id).first()
    if draft is None:
        raise domain.NotFound("No such draft.", code="draft_not_found")
    return draft


def _apply(draft: Draft, data: dict[str, Any]) -> None:
    for name in _ADDRESS_FIELDS:
        if name in data:
            setattr(draft, name, addresses_clean(name, data[name] or []))
    if data.get("send_at") is not None:
        send_at_clean(send_at=data["send_at"], now=timezone.now())
    for name in _PLAIN_FIELDS:
        if name in data:
            setattr(draft, name, data[name] if name != "headers" else dict(data[name] or {}))
    if "attachments" in data:
        draft.attachment_ids = list(dict.fromkeys(data["attachments"] or []))


def draft_create(
    *, agent: Agent, data: dict[str, Any], in_reply_to: Message | None = None, reply_all: bool = False
) -> Draft:
    """A new draft from the fields of ``mail.serializers.DraftInput``. A reply draft starts
    with the reply's recipients and subject (``reply_all``: everyone but the agent), which
    the body may override and a PATCH may change."""
    draft = Draft(agent=agent, in_reply_to=in_reply_to)
    if in_reply_to is not None:
        to, cc = reply_recipients(agent=agent, original=in_reply_to, reply_all=reply_all)
        _apply(draft, {"to": to, "cc": cc, "subject": subject_reply(in_reply_to.subject)})
    _apply(draft, data)
    draft.save()
    return draft


def _unsent_check(draft: Draft) -> None:
    if draft.message_id is not None:
        raise domain.Conflict(
            "This draft was already sent.", code="draft_already_sent", details={"MessageID": draft.message_id}
        )


def draft_update(*, draft: Draft, data: dict[str, Any]) -> Draft:
    _unsent_check(draft)
    _apply(draft, data)
    draft.save()
    return draft


def draft_delete(*, draft: Draft) -> None:
    draft.delete()


def draft_send(*, agent: Agent, draft_id: str, idempotency_key: str = "") -> Message:
    """Send the draft as ``POST /v1/send`` would (policy, approval, schedule) and record the
    message on it, in one transaction: of two sends racing, the second waits for the first
    and finds it sent (``draft_already_sent``)."""
    with transaction.atomic():
        draft = draft_get(agent=agent, draft_id=draft_id, for_update=True)
        _unsent_check(draft)
        if draft.body is None and draft.html is None:
            raise domain.Invalid(
                "A draft needs body or html to be sent.", code="missing_field", details={"field": "body"}
            )
        outgoing = Outgoing(
            to=addresses_clean("to", draft.to, required=True),
            cc=list(draft.cc),
            bcc=list(draft.bcc),
            reply_to=list(draft.reply_to),
            subject=draft.subject,
            body=draft.body,
            html=draft.html,
            headers=dict(draft.headers),
            attachment_ids=list(draft.attachment_ids),
        )
        threading = reply_threading(draft.in_reply_to) if draft.in_reply_to is not None else {}
        message = message_send(
            agent=agent, outgoing=outgoing, idempotency_key=idempotency_key, send_at=draft.send_at, **threading
        )
        draft.message = message
        draft.save(update_fields=["message", "updated_at"])
    return message
