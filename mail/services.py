"""Write paths of the mailbox: labels, read state, archive and delete.

One keyword-only function per state change, each in a transaction; the API and the
admin both call these, so a rule enforced here cannot be bypassed by either.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from assmbl import domain
from mail import storage
from mail.attachments import attachment_objects_prune
from mail.message_content import attachment_texts_prune
from mail.models import Message, MessageLabel

log = logging.getLogger(__name__)

MAX_LABELS = 20
MAX_LABEL_LENGTH = 64


def _label_forbidden(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in ("Cc", "Cs") or (category == "Cf" and ch <= "\uffff")


def label_validate(name: object) -> str:
    """A label is 1-64 characters, not white space only, no control characters (API.md)."""
    if not isinstance(name, str):
        raise domain.Invalid("A label must be a string.", code="invalid_label", details={"label": name})
    if not 1 <= len(name) <= MAX_LABEL_LENGTH:
        raise domain.Invalid(
            f"A label is 1-{MAX_LABEL_LENGTH} characters.", code="invalid_label", details={"label": name}
        )
    if not name.strip():
        raise domain.Invalid("A label cannot be white space only.", code="invalid_label", details={"label": name})
    # Controls (NUL breaks PostgreSQL text columns) and the format characters of the BMP
    # (bidi overrides, zero-width joiners: they hide or reorder what is shown); a lone
    # surrogate cannot be stored. Unassigned and private-use code points pass (which are
    # unassigned depends on the Unicode version), and so do the format characters beyond
    # the BMP (tag characters spell the subdivision flag emoji): the schema
    # (mail.serializers.LABEL_SCHEMA) states exactly this rule.
    if any(_label_forbidden(ch) for ch in name):
        raise domain.Invalid(
            "A label cannot contain control characters.", code="invalid_label", details={"label": name}
        )
    return name


def _locked(message: Message) -> Message:
    # The row lock is what makes concurrent patches of one message serialise instead of
    # each computing "20 labels at most" from a stale view (PostgreSQL); SQLite's
    # IMMEDIATE transactions already serialise writers.
    locked = Message.objects.select_for_update().select_related("agent").filter(pk=message.pk).first()
    if locked is None:  # deleted between the caller's lookup and the lock
        raise domain.NotFound("No such message.", code="message_not_found")
    return locked


def message_labels_patch(*, message: Message, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Message:
    """Add and remove labels atomically: all or nothing, at most MAX_LABELS afterwards."""
    add_set = {label_validate(name) for name in add}
    remove_set = {label_validate(name) for name in remove}
    both = sorted(add_set & remove_set)
    if both:
        raise domain.Invalid(
            "A label cannot be both added and removed.", code="label_in_add_and_remove", details={"labels": both}
        )
    with transaction.atomic():
        locked = _locked(message)
        current = set(MessageLabel.objects.filter(message=locked).values_list("name", flat=True))
        result = (current | add_set) - remove_set
        if len(result) > MAX_LABELS:
            raise domain.Invalid(
                f"A message holds at most {MAX_LABELS} labels.",
                code="too_many_labels",
                details={"max": MAX_LABELS, "would_have": len(result)},
            )
        to_add = add_set - current
        to_remove = remove_set & current
        if to_remove:
            MessageLabel.objects.filter(message=locked, name__in=to_remove).delete()
        if to_add:
            MessageLabel.objects.bulk_create([MessageLabel(message=locked, name=name) for name in sorted(to_add)])
        if to_add or to_remove:
            Message.objects.filter(pk=locked.pk).update(updated_at=timezone.now())
    return message_refetch(message=message)


def message_read_set(*, message: Message, is_read: bool) -> Message:
    """Mark read or unread; setting the current value is a no-op, not an error."""
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).exclude(is_read=is_read).update(is_read=is_read)
    return message_refetch(message=message)


def _siblings(message: Message) -> list[Message]:
    """Lock every message that shares this message's raw object, in a fixed order so that
    two agents archiving or deleting copies of one delivery cannot deadlock."""
    if not message.storage_key:
        return list(Message.objects.select_for_update().filter(pk=message.pk))
    return list(Message.objects.select_for_update().filter(storage_key=message.storage_key).order_by("pk"))


def message_archive_set(*, message: Message, archived: bool) -> Message:
    """Archive (move the raw MIME to the archive storage) or restore a message.

    Archiving an archived message is a 409 ``already_archived``; restoring one that is
    not archived is a no-op. The raw object is content-addressed and may be shared by
    several agents' copies of one delivery: it stays in the mail storage while any
    unarchived sibling still uses it (``raw_open`` finds it in either storage).
    """
    with transaction.atomic():
        siblings = _siblings(message)
        me = next((m for m in siblings if m.pk == message.pk), None)
        if me is None:  # deleted meanwhile
            raise domain.NotFound("No such message.", code="message_not_found")
        if archived and me.archived:
            raise domain.Conflict("The message is already archived.", code="already_archived")
        if not archived and not me.archived:
            return message_refetch(message=message)
        Message.objects.filter(pk=me.pk).update(archived=archived)
        # The label rows' copy of the flag (MessageLabel.archived, for ?label=...).
        MessageLabel.objects.filter(message_id=me.pk).copy_message_keys()
        if me.storage_key:
            others = [m for m in siblings if m.pk != me.pk]
            # keep_source: another copy still expects the object where it is now.
            keep_source = any(m.archived != archived for m in others)
            try:
                storage.raw_move(me.storage_key, to_archive=archived, keep_source=keep_source)
            except FileNotFoundError:
                # Already where it should be (a repeated move after a crash, or a sibling
                # moved it): raw_open falls back to the other storage, so reads still work.
                log.info(
                    "raw object %s not in source storage while %s",
                    me.storage_key,
                    "archiving" if archived else "restoring",
                )
    return message_refetch(message=message)


def message_delete(*, message: Message) -> None:
    """Delete the index row and, when no other message still references them, the raw
    object and the stored attachment parts (deleted mail must not linger in storage)."""
    with transaction.atomic():
        siblings = _siblings(message)
        if not any(m.pk == message.pk for m in siblings):
            return
        parts = list(message.attachments.values_list("storage_key", "sha256"))
        part_keys = [key for key, _ in parts if key]
        Message.objects.filter(pk=message.pk).delete()  # its attachment rows (and its content row) with it
        if part_keys:
            transaction.on_commit(lambda: attachment_objects_prune(part_keys))
        if shas := {sha for _, sha in parts if sha}:
            account_id = message.agent.account_id
            transaction.on_commit(lambda: attachment_texts_prune(account_id=account_id, sha256s=shas))
        key = message.storage_key
        if not key:
            return
        others = [m for m in siblings if m.pk != message.pk]
        # After commit: a rollback must not leave a row pointing at deleted bytes.
        if not others:
            transaction.on_commit(lambda: storage.raw_delete(key))
        else:
            keep_mail = any(not m.archived for m in others)
            keep_archive = any(m.archived for m in others)
            transaction.on_commit(lambda: storage.raw_prune(key, keep_mail=keep_mail, keep_archive=keep_archive))


def message_refetch(*, message: Message) -> Message:
    """The message with what the inbox item needs, fresh from the database."""
    fresh = Message.objects.with_item_relations().filter(pk=message.pk).first()
    if fresh is None:  # deleted by a concurrent request
        raise domain.NotFound("No such message.", code="message_not_found")
    return fresh


__all__ = [
    "MAX_LABELS",
    "label_validate",
    "message_archive_set",
    "message_delete",
    "message_labels_patch",
    "message_read_set",
    "message_refetch",
]
