"""Moderation write paths used by the admin console: releasing held or quarantined mail
into the inbox (``mail.release.message_release``, the same service a sender's verification
uses), trusting or blocking a message's sender. Other moderation actions (label, read,
archive, delete) call the same service functions as the API."""

from __future__ import annotations

from directory.services import SenderAction
from mail.models import Message
from mail.release import message_release
from mail.trust import sender_entry_create

__all__ = ["message_release", "message_sender_block", "message_sender_trust"]


def message_sender_trust(*, message: Message) -> None:
    """Trust the message's sender for its agent: the senders API's own service, which also
    verifies the sender and releases mail held for it."""
    sender_entry_create(agent=message.agent, address_or_domain=message.sender, action=SenderAction.TRUST)


def message_sender_block(*, message: Message) -> None:
    sender_entry_create(agent=message.agent, address_or_domain=message.sender, action=SenderAction.BLOCK)
