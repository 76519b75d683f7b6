"""Attachments: claim-check uploads for sending, and parts of received mail.

The sending service depends only on the three functions below; the attachments issue
implements them (uploads, checks, storage), the sending issue calls them.
"""

from __future__ import annotations

from typing import IO

from assmbl.errors import ValidationFailed
from directory.models import Agent
from mail.models import Attachment, Message


def attachments_for_send(*, agent: Agent, attachment_ids: list[str]) -> list[Attachment]:
    """The agent's uploaded attachments, checked (uploaded, size, checksum, type) and ready
    to attach. Raises ValidationFailed (400) with code ``attachment_not_uploaded`` or
    ``attachment_mismatch``; an id of another agent is treated as not uploaded."""
    if attachment_ids:
        raise ValidationFailed(
            "Attachment uploads are not available yet.", code="attachment_not_uploaded", details={"attachments": attachment_ids}
        )
    return []


def attachment_open(attachment: Attachment) -> IO[bytes]:
    """A binary file object over an upload's bytes (for building the outbound MIME)."""
    raise NotImplementedError


def attachments_mark_claimed(*, attachments: list[Attachment], message: Message) -> None:
    """Record that these uploads were sent with ``message`` (called in the send transaction)."""
