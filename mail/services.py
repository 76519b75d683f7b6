"""TEMPORARY on the admin branch: replaced by the inbox-api branch's services at merge."""

from __future__ import annotations

from django.db import transaction

from mail.models import Message, MessageLabel
from mail.storage import raw_delete, raw_move


def message_read_set(*, message: Message, is_read: bool) -> Message:
    Message.objects.filter(pk=message.pk).update(is_read=is_read)
    message.refresh_from_db()
    return message


def message_archive_set(*, message: Message, archived: bool) -> Message:
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.archived == archived:
            return locked
        others = Message.objects.filter(storage_key=locked.storage_key, archived=locked.archived).exclude(pk=locked.pk).exists()
        raw_move(locked.storage_key, to_archive=archived, keep_source=others)
        locked.archived = archived
        locked.save(update_fields=["archived", "updated_at"])
    message.refresh_from_db()
    return message


def message_labels_patch(*, message: Message, add: list[str], remove: list[str]) -> Message:
    with transaction.atomic():
        Message.objects.select_for_update().get(pk=message.pk)
        MessageLabel.objects.filter(message=message, name__in=remove).delete()
        for name in add:
            MessageLabel.objects.get_or_create(message=message, name=name)
    return message


def message_delete(*, message: Message) -> None:
    key = message.storage_key
    message.delete()
    if key and not Message.objects.filter(storage_key=key).exists():
        raw_delete(key)
