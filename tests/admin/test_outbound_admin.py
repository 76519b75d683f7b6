"""The console's "Outbound awaiting approval" and suppressions: a moderator reads a held
message and approves or rejects it with a note (audited, same services as the API); staff
list, add and remove suppressions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core import mail as outbox
from django.test import Client

from directory.models import OutboundPolicy
from mail.models import ApprovalDecision, Message, Suppression
from mail.sending import Outgoing, message_send

pytestmark = pytest.mark.django_db

QUEUE = "/admin/mail/outboundapproval/"


@pytest.fixture
def held(owner: Any, settings: Any) -> Message:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboundPolicy.objects.create(agent=owner.agent, approval="external")
    outgoing = Outgoing(
        to=["bob@example.com"], cc=["carol@example.com"], subject="Quarterly offer", body="Dear Bob,\n\n20% off."
    )
    return message_send(agent=owner.agent, outgoing=outgoing)


def test_the_queue_lists_held_outbound_mail_with_recipients_and_who_asked(
    moderator_client: Client, held: Message
) -> None:
    body = moderator_client.get(QUEUE).content.decode()

    assert "Quarterly offer" in body
    assert "bob@example.com, carol@example.com" in body
    assert "owner" in body


def test_the_message_page_shows_its_extracted_text_and_the_decision_form(
    moderator_client: Client, held: Message
) -> None:
    body = moderator_client.get(f"{QUEUE}{held.pk}/change/").content.decode()

    assert "20% off." in body
    assert 'name="_approve"' in body and 'name="_reject"' in body and 'name="note"' in body


def test_a_moderator_approves_with_a_note(
    moderator_client: Client, moderator: Any, held: Message, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = moderator_client.post(f"{QUEUE}{held.pk}/change/", {"_approve": "1", "note": "fine"})

    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == Message.Status.SENT
    assert len(outbox.outbox) == 1
    decision = ApprovalDecision.objects.get(message=held)
    assert (decision.decision, decision.decided_by, decision.user, decision.note) == (
        "approved",
        "staff:mod",
        moderator,
        "fine",
    )
    assert LogEntry.objects.filter(object_id=held.pk, change_message__contains="approved").exists()
    assert moderator_client.get(QUEUE).context["cl"].result_count == 0


def test_a_moderator_rejects_and_nothing_is_sent(moderator_client: Client, held: Message) -> None:
    moderator_client.post(f"{QUEUE}{held.pk}/change/", {"_reject": "1", "note": "not approved wording"})

    held.refresh_from_db()
    assert held.status == Message.Status.REJECTED
    assert outbox.outbox == []
    assert ApprovalDecision.objects.get(message=held).note == "not approved wording"


def test_deciding_twice_shows_an_error_and_changes_nothing(moderator_client: Client, held: Message) -> None:
    moderator_client.post(f"{QUEUE}{held.pk}/change/", {"_reject": "1"})

    response = moderator_client.post(f"{QUEUE}{held.pk}/change/", {"_approve": "1"}, follow=True)

    assert "not awaiting approval" in response.content.decode()
    held.refresh_from_db()
    assert held.status == Message.Status.REJECTED


def test_staff_list_add_and_remove_suppressions(moderator_client: Client, owner: Any) -> None:
    added = moderator_client.post(
        "/admin/mail/suppression/add/", {"account": owner.agent.account.pk, "address": "Bob@Example.com", "detail": ""}
    )
    assert added.status_code == 302, added.content.decode()[-2000:]
    suppression = Suppression.objects.get()
    assert (suppression.address, suppression.reason) == ("bob@example.com", "manual")
    assert "bob@example.com" in moderator_client.get("/admin/mail/suppression/").content.decode()

    moderator_client.post(f"/admin/mail/suppression/{suppression.pk}/delete/", {"post": "yes"})

    assert not Suppression.objects.exists()
