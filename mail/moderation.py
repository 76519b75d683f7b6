"""Moderation write paths used by the admin console: releasing held or quarantined mail
into the inbox. Other moderation actions (label, read, archive, delete, trust, block) call
the same service functions as the API."""

from __future__ import annotations

from django.db import transaction

from mail.ingest import message_received
from mail.models import Message


def message_release(*, message: Message) -> bool:
    """Move a held, blocked or quarantined message into its agent's inbox and tell the
    agent (a message.received event), once. Returns False if it was already there."""
    with transaction.atomic():
        updated = (
            Message.objects.filter(pk=message.pk, direction=Message.Direction.INBOUND)
            .exclude(disposition=Message.Disposition.INBOX)
            .update(disposition=Message.Disposition.INBOX)
        )
        if not updated:
            return False
        message.refresh_from_db()
        message_received(message)
    return True


def message_sender_trust(*, message: Message) -> None:
    """Trust the message's sender for its agent: the directory API's own service, which also
    verifies the sender and releases mail held for it."""
    from directory.services import SenderAction, sender_entry_create

    sender_entry_create(agent=message.agent, address_or_domain=message.sender, action=SenderAction.TRUST)


def message_sender_block(*, message: Message) -> None:
    from directory.services import SenderAction, sender_entry_create

    sender_entry_create(agent=message.agent, address_or_domain=message.sender, action=SenderAction.BLOCK)
