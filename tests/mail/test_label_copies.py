"""A label row's copies of its message's agent, received_at and archived (MessageLabel, for
GET /v1/inbox?label=...) stay equal to the message through every path that archives,
restores or deletes it: the API, the admin's actions and a bulk archive job.
MessageLabelQuerySet.copy_message_keys is their one writer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from mail.models import Message, MessageLabel
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db


def _drift() -> list[tuple[str, str]]:
    """(label, what differs) for every label row whose copies are not its message's."""
    wrong = []
    for label in MessageLabel.objects.select_related("message"):
        m = label.message
        for key in ("agent_id", "received_at", "archived"):
            if getattr(label, key) != getattr(m, key):
                wrong.append((f"{m.pk}/{label.name}", key))
    return wrong


@pytest.fixture
def superuser_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-pass-123"))
    return client


@pytest.fixture
def labelled(owner: Any) -> list[Message]:
    messages = [
        MessageFactory(agent=owner.agent, received_at=timezone.now() - dt.timedelta(days=100 - i)) for i in range(3)
    ]
    for message in messages:
        response = owner.client.patch(f"/v1/messages/{message.id}/labels", {"add": ["a", "b"]}, format="json")
        assert response.status_code == 200
    return messages


def test_the_api_keeps_the_copies_through_archive_restore_and_delete(owner: Any, labelled: list[Message]) -> None:
    first, second, _ = labelled
    for message, archived in [(first, True), (second, True), (first, False)]:
        response = owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": archived}, format="json")
        assert response.status_code == 200
        assert _drift() == []
    assert owner.client.delete(f"/v1/messages/{second.id}").status_code == 204
    assert _drift() == [] and not MessageLabel.objects.filter(message_id=second.id).exists()
    assert MessageLabel.objects.filter(archived=True).count() == 0
    assert MessageLabel.objects.count() == 4


def test_the_admin_keeps_the_copies_through_its_actions(superuser_client: Client, labelled: list[Message]) -> None:
    pks = [m.pk for m in labelled]
    for action in ("archive", "unarchive", "archive"):
        superuser_client.post("/admin/mail/message/", {"action": action, "_selected_action": pks[:2]})
        assert _drift() == [], action
    assert MessageLabel.objects.filter(archived=True).count() == 4
    superuser_client.post(
        "/admin/mail/message/", {"action": "delete_messages", "_selected_action": pks[:1], "post": "yes"}
    )
    assert _drift() == []
    assert (
        not Message.objects.filter(pk=pks[0]).exists() and not MessageLabel.objects.filter(message_id=pks[0]).exists()
    )


def test_a_bulk_archive_job_keeps_the_copies(
    superuser_client: Client, owner: Any, labelled: list[Message], django_capture_on_commit_callbacks: Any
) -> None:
    for action in ("archive", "restore"):
        with django_capture_on_commit_callbacks(execute=True):
            superuser_client.post(
                "/admin/mail/archivejob/add/", {"action": action, "agent": owner.agent.pk, "older_than_days": 90}
            )
        assert _drift() == [], action
        assert MessageLabel.objects.filter(archived=True).count() == (6 if action == "archive" else 0)


def test_copy_message_keys_sets_every_copy_from_the_message_row(owner: Any, labelled: list[Message]) -> None:
    # Rows whose copies drifted (written around the one writer) are set right again, all
    # three columns, from the message rows in the database.
    MessageLabel.objects.update(received_at=timezone.now(), archived=True)
    assert _drift()
    MessageLabel.objects.filter(message__in=labelled[:2]).copy_message_keys()
    assert {label for label, _ in _drift()} == {f"{labelled[2].pk}/a", f"{labelled[2].pk}/b"}
