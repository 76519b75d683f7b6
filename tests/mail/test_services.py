"""The mailbox's write services (mail/services.py), called as the API and the admin call
them, on real delivered mail: labels, read state, archive and delete, and what each does
to the raw object that several agents' copies of one delivery share."""

from __future__ import annotations

from typing import Any

import pytest

from assmbl import domain
from mail.models import Message, MessageLabel
from mail.services import (
    MAX_LABELS,
    label_validate,
    message_archive_set,
    message_delete,
    message_labels_patch,
    message_read_set,
    message_refetch,
)
from mail.storage import raw_exists
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def _delivered(deliver: Any, *personas: Any) -> list[Message]:
    """One mail delivered to each persona: their copies share one raw object."""
    deliver(build_mail(to=[p.address for p in personas], subject="Shared"), to=[p.address for p in personas])
    return [Message.objects.get(agent=p.agent) for p in personas]


@pytest.mark.parametrize("name", ["", " \t", "x" * 65, "tab\there", "nul\x00", "rtl\u202eoverride", 7])
def test_it_refuses_a_label_the_contract_does_not_allow(name: Any) -> None:
    with pytest.raises(domain.Invalid) as refused:
        label_validate(name)
    assert refused.value.code == "invalid_label"


@pytest.mark.parametrize("name", ["urgent", "x" * 64, "été", "\U0001f3f4\U000e0067\U000e0062\U000e007f"])
def test_it_accepts_a_label_of_one_to_64_printable_characters(name: str) -> None:
    assert label_validate(name) == name


def test_labels_are_added_and_removed_in_one_patch(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    message_labels_patch(message=message, add=["a", "b"])

    patched = message_labels_patch(message=message, add=["c"], remove=["a", "missing"])

    assert sorted(MessageLabel.objects.filter(message=patched).values_list("name", flat=True)) == ["b", "c"]


def test_a_patch_past_the_label_limit_changes_nothing(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    message_labels_patch(message=message, add=[f"l{i}" for i in range(MAX_LABELS)])

    with pytest.raises(domain.Invalid) as refused:
        message_labels_patch(message=message, add=["one-more"], remove=[])

    assert refused.value.code == "too_many_labels"
    assert MessageLabel.objects.filter(message=message).count() == MAX_LABELS
    assert not MessageLabel.objects.filter(message=message, name="one-more").exists()


def test_a_label_cannot_be_added_and_removed_at_once(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    with pytest.raises(domain.Invalid) as refused:
        message_labels_patch(message=message, add=["x"], remove=["x"])
    assert refused.value.code == "label_in_add_and_remove"
    assert not MessageLabel.objects.filter(message=message).exists()


def test_marking_read_twice_is_not_an_error(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    assert message_read_set(message=message, is_read=True).is_read
    assert message_read_set(message=message, is_read=True).is_read
    assert not message_read_set(message=message, is_read=False).is_read


def test_archiving_moves_the_raw_object_and_restoring_moves_it_back(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    key = message.storage_key

    assert message_archive_set(message=message, archived=True).archived
    assert (raw_exists(key), raw_exists(key, archived=True)) == (False, True)

    assert not message_archive_set(message=message, archived=False).archived
    assert (raw_exists(key), raw_exists(key, archived=True)) == (True, False)


def test_archiving_an_archived_message_is_a_conflict_and_restoring_a_live_one_is_not(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    assert not message_archive_set(message=message, archived=False).archived
    message_archive_set(message=message, archived=True)
    with pytest.raises(domain.Conflict) as refused:
        message_archive_set(message=message, archived=True)
    assert refused.value.code == "already_archived"


def test_a_copy_still_in_the_inbox_keeps_the_shared_raw_object_in_the_mail_storage(
    deliver: Any, owner: Any, teammate: Any
) -> None:
    mine, theirs = _delivered(deliver, owner, teammate)
    assert mine.storage_key == theirs.storage_key

    message_archive_set(message=mine, archived=True)

    assert raw_exists(mine.storage_key) and raw_exists(mine.storage_key, archived=True)
    assert not Message.objects.get(pk=theirs.pk).archived


def test_deleting_the_last_copy_deletes_the_raw_object(
    deliver: Any, owner: Any, teammate: Any, django_capture_on_commit_callbacks: Any
) -> None:
    mine, theirs = _delivered(deliver, owner, teammate)
    key = mine.storage_key

    with django_capture_on_commit_callbacks(execute=True):
        message_delete(message=mine)
    assert raw_exists(key) and Message.objects.filter(pk=theirs.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        message_delete(message=theirs)
    assert not raw_exists(key) and not Message.objects.filter(pk__in=[mine.pk, theirs.pk]).exists()


def test_deleting_a_deleted_message_does_nothing(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    message_delete(message=message)
    message_delete(message=message)
    assert not Message.objects.filter(pk=message.pk).exists()


def test_a_service_on_a_message_deleted_meanwhile_answers_not_found(deliver: Any, owner: Any) -> None:
    (message,) = _delivered(deliver, owner)
    Message.objects.filter(pk=message.pk).delete()
    for call in (
        lambda: message_refetch(message=message),
        lambda: message_labels_patch(message=message, add=["x"]),
        lambda: message_archive_set(message=message, archived=True),
    ):
        with pytest.raises(domain.NotFound):
            call()
