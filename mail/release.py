"""A message enters its agent's view: announced when it arrives (``message_received``) or
released later from held, blocked or quarantined mail (``message_release``: the admin's
Release action and a sender's verification both go through it)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from mail.message_content import message_content_event_fields, message_content_get
from mail.models import Attachment, Message
from mail.serializers import message_item
from mail.threads import threads_refresh
from webhooks.models import Endpoint
from webhooks.services import events_record


def message_received(message: Message) -> None:
    """The seam where 'a message arrived' becomes an event (webhooks, long-poll)."""
    messages_received([message])


_EVENT_OF: dict[str, str] = {
    Message.Disposition.INBOX: "message.received",
    Message.Disposition.QUARANTINED: "message.quarantined",
}


def messages_received(messages: list[Message], *, attachments_of: Mapping[str, list[Attachment]] | None = None) -> None:
    """``message_received`` for a batch. Held and blocked mail is for staff, not the agent,
    so it makes no event.

    ``attachments_of``: for messages indexed just now, which have no labels yet and
    exactly these attachments (by message id), so their items need no query. Without it
    the labels and attachments are read in one query for the batch."""
    announced = [m for m in messages if m.disposition in _EVENT_OF]
    if attachments_of is None:
        fresh = Message.objects.filter(pk__in=[m.pk for m in announced]).with_item_relations().in_bulk()
        items = [message_item(fresh[m.pk]) for m in announced]
    else:
        items = [message_item(m, labels=[], attachments=attachments_of.get(m.pk, [])) for m in announced]
    wanted = _content_wanted(announced)
    for message, item in zip(announced, items, strict=True):
        if message.pk in wanted:
            # Computed here, in the caller's transaction, only for agents whose webhook
            # endpoints want message.received: extraction costs several times what indexing
            # a mail does, and ingest without receivers must not pay for it.
            content = message_content_get(message=message)
            item.update(message_content_event_fields(content), BodyPreview=content.body_preview)
    events_record([(m.agent, _EVENT_OF[m.disposition], item) for m, item in zip(announced, items, strict=True)])


def _content_wanted(messages: list[Message]) -> set[str]:
    """The received (not quarantined) messages whose agent has an enabled endpoint that
    wants message.received: their events carry ExtractedText and Codes."""
    received = [m for m in messages if m.disposition == Message.Disposition.INBOX]
    if not received:
        return set()
    agents = {m.agent_id: m.agent for m in received}
    wanting = {
        agent.pk
        for agent, endpoints in zip(
            agents.values(), Endpoint.objects.enabled().targeting(list(agents.values())), strict=True
        )
        if any(endpoint.wants("message.received") for endpoint in endpoints)
    }
    return {m.pk for m in received if m.agent_id in wanting}


def message_release(*, message: Message, sender_verified: bool | None = None) -> bool:
    """Move a held, blocked or quarantined inbound message into its agent's inbox and tell
    the agent (a message.received event), once: the conditional update lets exactly one of
    two concurrent releases through. The reason it was kept out no longer applies, so it is
    cleared. ``sender_verified``: the trust decision that released it, when there is one.
    Returns False if the message was already in the inbox."""
    fields: dict[str, object] = {
        "disposition": Message.Disposition.INBOX,
        "quarantine_reason": "",
        "updated_at": timezone.now(),
    }
    if sender_verified is not None:
        fields["sender_verified"] = sender_verified
    with transaction.atomic():
        updated = (
            Message.objects.filter(pk=message.pk, direction=Message.Direction.INBOUND)
            .exclude(disposition=Message.Disposition.INBOX)
            .update(**fields)
        )
        if not updated:
            return False
        message.refresh_from_db()
        message_received(message)
        threads_refresh(keys=[(message.agent_id, message.thread_id)])
    return True
