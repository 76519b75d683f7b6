"""Write paths of the mailbox: labels, read state, archive and delete.

One keyword-only function per state change, each in a transaction; the API and the
admin both call these, so a rule enforced here cannot be bypassed by either.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from assmbl import domain
from directory.models import Agent
from mail import storage
from mail.attachments import attachment_objects_prune
from mail.message_content import attachment_texts_prune
from mail.models import Message, MessageLabel, Thread
from mail.threads import ThreadKey, thread_messages, threads_refresh, threads_shift

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


# What the write paths read of a locked message: its keys and the state they change (a
# whole row is ~35 columns, five of them JSON, decoded a hundred times in a batch).
_LOCKED_COLUMNS = ("id", "agent", "thread_id", "direction", "disposition", "is_read", "archived", "storage_key")


def _locked(messages: Iterable[Message]) -> list[Message]:
    """``messages`` read again under row locks. The locks are what make concurrent patches
    of one message serialise instead of each computing "20 labels at most" from a stale
    view (PostgreSQL), taken in primary key order so that two batches over the same
    messages cannot deadlock; SQLite's IMMEDIATE transactions already serialise writers.
    A message deleted meanwhile is simply not among them. A queryset (the batch's scoped
    lookup) is locked as it is read, without a query of its own first."""
    if not isinstance(messages, QuerySet):
        messages = Message.objects.filter(pk__in={m.pk for m in messages})
    return list(messages.select_for_update().only(*_LOCKED_COLUMNS).order_by("pk"))


def _keys(messages: Iterable[Message]) -> set[ThreadKey]:
    return {(m.agent_id, m.thread_id) for m in messages}


def _labels_check(add: Iterable[str], remove: Iterable[str]) -> tuple[set[str], set[str]]:
    add_set = {label_validate(name) for name in add}
    remove_set = {label_validate(name) for name in remove}
    both = sorted(add_set & remove_set)
    if both:
        raise domain.Invalid(
            "A label cannot be both added and removed.", code="label_in_add_and_remove", details={"labels": both}
        )
    return add_set, remove_set


def _labels_apply(locked: list[Message], add: set[str], remove: set[str]) -> list[Message]:
    """Every message's new label set is checked against MAX_LABELS before any row is
    written. Returns the messages that changed."""
    current: dict[str, set[str]] = {m.pk: set() for m in locked}
    for message_id, name in MessageLabel.objects.filter(message__in=locked).values_list("message_id", "name"):
        current[message_id].add(name)
    for message in locked:
        would_have = len((current[message.pk] | add) - remove)
        if would_have > MAX_LABELS:
            raise domain.Invalid(
                f"A message holds at most {MAX_LABELS} labels.",
                code="too_many_labels",
                details={"max": MAX_LABELS, "would_have": would_have, "message_id": message.pk},
            )
    removing = [m.pk for m in locked if remove & current[m.pk]]
    if removing:
        MessageLabel.objects.filter(message_id__in=removing, name__in=remove).delete()
    adding = [MessageLabel(message_id=m.pk, name=name) for m in locked for name in sorted(add - current[m.pk])]
    if adding:
        MessageLabel.objects.bulk_create(adding)
    changed_ids = set(removing) | {label.message_id for label in adding}
    return [m for m in locked if m.pk in changed_ids]


def messages_labels_patch(*, messages: Iterable[Message], add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
    """Add and remove labels on every one of ``messages`` atomically: all or nothing, at
    most MAX_LABELS on each afterwards (a message that would pass it changes nothing)."""
    add_set, remove_set = _labels_check(add, remove)
    with transaction.atomic():
        changed = _labels_apply(_locked(messages), add_set, remove_set)
        if changed:
            Message.objects.filter(pk__in=[m.pk for m in changed]).update(updated_at=timezone.now())
        threads_refresh(keys=_keys(changed))


def message_labels_patch(*, message: Message, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Message:
    """Add and remove labels atomically: all or nothing, at most MAX_LABELS afterwards."""
    messages_labels_patch(messages=[message], add=add, remove=remove)
    return message_refetch(message=message)


def _read_apply(messages: Iterable[Message], is_read: bool) -> set[ThreadKey]:
    messages = list(messages)
    updated = Message.objects.filter(pk__in=[m.pk for m in messages]).exclude(is_read=is_read).update(is_read=is_read)
    return _keys(messages) if updated else set()


def messages_read_set(*, messages: Iterable[Message], is_read: bool) -> None:
    """Mark read or unread; setting the current value is a no-op, not an error."""
    with transaction.atomic():
        threads_refresh(keys=_read_apply(messages, is_read))


def message_read_set(*, message: Message, is_read: bool) -> Message:
    """Mark read or unread; setting the current value is a no-op, not an error."""
    messages_read_set(messages=[message], is_read=is_read)
    return message_refetch(message=message)


def _siblings(message: Message) -> list[Message]:
    """Lock every message that shares this message's raw object, in a fixed order so that
    two agents archiving or deleting copies of one delivery cannot deadlock."""
    if not message.storage_key:
        return list(Message.objects.select_for_update().filter(pk=message.pk))
    return list(Message.objects.select_for_update().filter(storage_key=message.storage_key).order_by("pk"))


def _archive_apply(messages: Iterable[Message], archived: bool) -> list[Message]:
    """Archive or restore each of ``messages`` that is not so already (in the caller's
    transaction); the ones that changed. Every copy of their raw objects is locked in one
    statement, in primary-key order as a delete locks them (the keep_source decisions read
    the copies' state); then one UPDATE, one copy to the label rows, and one move per raw
    object. A batch has locked its own messages before this (_locked), so a batch racing a
    delete of another agent's copy can still deadlock on PostgreSQL."""
    messages = list(messages)  # read twice below; a generator would be empty the second time
    pks = {m.pk for m in messages}
    keys = {m.storage_key for m in messages if m.storage_key}
    locked = list(
        Message.objects.select_for_update()
        .filter(Q(pk__in=pks) | Q(storage_key__in=keys))
        .only(*_LOCKED_COLUMNS)
        .order_by("pk")
    )
    changed = [m for m in locked if m.pk in pks and m.archived != archived]  # absent: deleted meanwhile
    if not changed:
        return []
    ids = {m.pk for m in changed}
    Message.objects.filter(pk__in=ids).update(archived=archived)
    # The label rows' copy of the flag (MessageLabel.archived, for ?label=...).
    MessageLabel.objects.filter(message_id__in=ids).copy_message_keys()
    for key in sorted({m.storage_key for m in changed if m.storage_key}):
        # keep_source: a copy left as it was still expects the object where it is now.
        keep_source = any(m.storage_key == key and m.pk not in ids and m.archived != archived for m in locked)
        try:
            storage.raw_move(key, to_archive=archived, keep_source=keep_source)
        except FileNotFoundError:
            # Already where it should be (a repeated move after a crash): raw_open falls
            # back to the other storage, so reads still work.
            log.info("raw object %s not in source storage while %s", key, "archiving" if archived else "restoring")
    for message in changed:
        message.archived = archived
    return changed


def messages_archive_set(*, messages: Iterable[Message], archived: bool) -> None:
    """Archive or restore each of ``messages`` that is not so already, in one transaction."""
    with transaction.atomic():
        threads_refresh(keys=_keys(_archive_apply(messages, archived)))


def message_archive_set(*, message: Message, archived: bool) -> Message:
    """Archive (move the raw MIME to the archive storage) or restore a message.

    Archiving an archived message is a 409 ``already_archived``; restoring one that is
    not archived is a no-op. The raw object is content-addressed and may be shared by
    several agents' copies of one delivery: it stays in the mail storage while any
    unarchived sibling still uses it (``raw_open`` finds it in either storage).
    """
    with transaction.atomic():
        changed = _archive_apply([message], archived)
        if changed:
            threads_refresh(keys=_keys(changed))
        elif not Message.objects.filter(pk=message.pk).exists():  # deleted meanwhile
            raise domain.NotFound("No such message.", code="message_not_found")
        elif archived:
            raise domain.Conflict("The message is already archived.", code="already_archived")
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
        threads_refresh(keys=_keys([message]))
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


def messages_batch_update(
    *,
    messages: Iterable[Message] | QuerySet[Message],
    add_labels: Iterable[str] = (),
    remove_labels: Iterable[str] = (),
    is_read: bool | None = None,
    archived: bool | None = None,
) -> None:
    """POST /v1/messages/batch: labels, read state and archive of every one of ``messages``
    in one transaction, by the rules of one message's PATCHes (already archived ones are
    left as they are). Label limits are checked for every message before any row changes;
    a message that would pass MAX_LABELS fails the whole batch."""
    add_set, remove_set = _labels_check(add_labels, remove_labels)
    with transaction.atomic():
        locked = _locked(messages)
        relabelled = _labels_apply(locked, add_set, remove_set) if add_set or remove_set else []
        read = [m for m in locked if is_read is not None and m.is_read != is_read]
        if relabelled or read:
            # One UPDATE for both; on a label-only change setting is_read to the value asked
            # is what the batch asks. is_read is in no index of mail_message (the unread
            # mail's is MessageUnread's, kept by triggers), so the UPDATE can be HOT.
            values = {} if is_read is None else {"is_read": is_read}
            Message.objects.filter(pk__in={m.pk for m in relabelled + read}).update(updated_at=timezone.now(), **values)
        # Before archiving: what ``read`` was is then still what the thread rows count.
        threads_shift(before=read, is_read=is_read, relabelled=relabelled)
        if archived is not None:
            threads_refresh(keys=_keys(_archive_apply(locked, archived)))


def _thread_messages(agent: Agent, thread_id: str) -> list[Message]:
    messages = list(thread_messages(agent=agent, thread_id=thread_id))
    if not messages:
        raise domain.NotFound("No such thread.", code="thread_not_found")
    return messages


def thread_get(*, agent: Agent, thread_id: str) -> Thread:
    thread = Thread.objects.for_agent(agent).filter(thread_id=thread_id).first()
    if thread is None:
        raise domain.NotFound("No such thread.", code="thread_not_found")
    return thread


def thread_labels_patch(*, agent: Agent, thread_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Thread:
    """One message's label patch on every message of the thread, all or nothing."""
    messages_labels_patch(messages=_thread_messages(agent, thread_id), add=add, remove=remove)
    return thread_get(agent=agent, thread_id=thread_id)


def thread_read_set(*, agent: Agent, thread_id: str, is_read: bool) -> Thread:
    """Mark every received message of the thread read or unread (what the agent sent is
    read by definition)."""
    received = [m for m in _thread_messages(agent, thread_id) if m.direction == Message.Direction.INBOUND]
    messages_read_set(messages=received, is_read=is_read)
    return thread_get(agent=agent, thread_id=thread_id)


def thread_archive_set(*, agent: Agent, thread_id: str, archived: bool) -> Thread:
    """Archive or restore every message of the thread. Archiving a thread whose messages
    are all archived is a 409 ``already_archived``, as for one message."""
    messages = _thread_messages(agent, thread_id)
    if archived and all(m.archived for m in messages):
        raise domain.Conflict("The thread is already archived.", code="already_archived")
    messages_archive_set(messages=messages, archived=archived)
    return thread_get(agent=agent, thread_id=thread_id)


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
    "messages_archive_set",
    "messages_batch_update",
    "messages_labels_patch",
    "messages_read_set",
    "thread_archive_set",
    "thread_get",
    "thread_labels_patch",
    "thread_read_set",
]
