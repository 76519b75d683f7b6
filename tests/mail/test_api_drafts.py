"""/v1/drafts: create, list, read, update, delete and send (with Idempotency-Key); a reply
draft starts with the reply's recipients and threads like a reply; attachments by claim
check; the outbound policy applies to a draft's send as to every send."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from directory.models import OutboundPolicy
from mail.models import Draft, Message
from tests.mail.test_api_attachments import upload
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


@pytest.fixture
def original(owner: Any, deliver: Any) -> Message:
    raw = build_mail(to=[owner.address, "carol@example.com"], sender="Alice <alice@example.com>", subject="Quote")
    return Message.objects.get(delivery=deliver(raw, to=owner.address).delivery)


def _create(owner: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = owner.client.post("/v1/drafts", body, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def test_a_draft_is_created_changed_read_listed_and_deleted(owner: Any) -> None:
    draft = _create(owner, {"to": "Bob <bob@example.com>", "subject": "Plan"})
    assert draft["To"] == ["Bob <bob@example.com>"] and draft["Body"] is None and draft["InReplyTo"] is None
    assert draft["MessageID"] is None

    changed = owner.client.patch(
        f"/v1/drafts/{draft['DraftID']}", {"body": "Step 1.", "cc": "ops@example.com"}, format="json"
    )
    assert changed.status_code == 200
    assert changed.json()["Body"] == "Step 1." and changed.json()["Cc"] == ["ops@example.com"]
    assert changed.json()["Subject"] == "Plan"

    assert owner.client.get(f"/v1/drafts/{draft['DraftID']}").json()["Body"] == "Step 1."
    assert [d["DraftID"] for d in owner.client.get("/v1/drafts").json()["items"]] == [draft["DraftID"]]
    assert owner.client.delete(f"/v1/drafts/{draft['DraftID']}").status_code == 204
    assert owner.client.get(f"/v1/drafts/{draft['DraftID']}").status_code == 404


def test_the_list_pages_with_a_cursor(owner: Any) -> None:
    ids = [_create(owner, {"subject": f"d{i}"})["DraftID"] for i in range(3)]

    first = owner.client.get("/v1/drafts?limit=2").json()
    rest = owner.client.get(f"/v1/drafts?limit=2&cursor={first['next_cursor']}").json()

    assert [d["DraftID"] for d in first["items"] + rest["items"]] == ids
    assert first["has_more"] is True and rest["has_more"] is False


def test_sending_a_draft_makes_a_sent_message_and_the_draft_keeps_its_id(owner: Any, post: Any) -> None:
    draft = _create(owner, {"to": "bob@example.com", "subject": "Plan", "body": "Go."})

    response = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {}, **{"Idempotency-Key": "plan-1"})

    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["MessageID"])
    assert (message.status, message.subject, message.to) == (Message.Status.SENT, "Plan", ["bob@example.com"])
    assert [i["MessageID"] for i in owner.client.get("/v1/sent").json()["items"]] == [message.id]
    assert owner.client.get(f"/v1/drafts/{draft['DraftID']}").json()["MessageID"] == message.id
    assert owner.client.get("/v1/drafts").json()["items"] == []  # the listing holds unsent drafts
    replay = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {}, **{"Idempotency-Key": "plan-1"})
    assert replay.status_code == 202 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["MessageID"] == message.id
    again = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {})
    assert again.status_code == 409 and again.json()["error"]["code"] == "draft_already_sent"
    assert again.json()["error"]["details"] == {"MessageID": message.id}
    changed = owner.client.patch(f"/v1/drafts/{draft['DraftID']}", {"body": "x"}, format="json")
    assert changed.status_code == 409
    assert Message.objects.outbound().count() == 1


def test_a_reply_all_draft_threads_with_the_original(owner: Any, post: Any, original: Message) -> None:
    draft = _create(owner, {"in_reply_to": original.id, "reply_all": True, "body": "Agreed."})
    assert draft["To"] == ["Alice <alice@example.com>"] and draft["Cc"] == ["carol@example.com"]
    assert draft["Subject"] == "Re: Quote" and draft["InReplyTo"] == original.id

    response = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {})

    message = Message.objects.get(pk=response.json()["MessageID"])
    assert message.in_reply_to == original.internet_message_id
    assert message.thread_id == original.thread_id


def test_a_draft_carries_attachments_by_claim_check(owner: Any, post: Any) -> None:
    attachment_id = upload(owner, b"%PDF-1.4 plan")
    draft = _create(
        owner, {"to": "bob@example.com", "subject": "File", "body": "attached", "attachments": [attachment_id]}
    )

    response = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {})

    assert response.status_code == 202, response.content
    message = Message.objects.get(pk=response.json()["MessageID"])
    assert [a.id for a in message.attachments.all()] == [attachment_id]


def test_sending_a_draft_without_recipients_or_body_is_refused_and_keeps_it(owner: Any, post: Any) -> None:
    no_to = _create(owner, {"subject": "x", "body": "b"})
    no_body = _create(owner, {"to": "bob@example.com"})

    assert post(owner, f"/v1/drafts/{no_to['DraftID']}/send", {}).json()["error"]["code"] == "missing_field"
    assert post(owner, f"/v1/drafts/{no_body['DraftID']}/send", {}).json()["error"]["code"] == "missing_field"
    assert Draft.objects.count() == 2


def test_a_scheduled_draft_is_scheduled_when_sent(owner: Any, post: Any) -> None:
    send_at = timezone.now() + dt.timedelta(hours=3)
    draft = _create(owner, {"to": "bob@example.com", "subject": "s", "body": "b", "send_at": send_at.isoformat()})

    response = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {})

    assert response.json()["Status"] == "scheduled"
    assert Message.objects.get(pk=response.json()["MessageID"]).send_at == send_at


def test_the_outbound_policy_applies_to_a_draft_send(owner: Any, post: Any) -> None:
    OutboundPolicy.objects.create(agent=owner.agent, allowed_recipients=["@partner.example"])
    draft = _create(owner, {"to": "bob@example.com", "subject": "s", "body": "b"})

    response = post(owner, f"/v1/drafts/{draft['DraftID']}/send", {})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "recipient_not_allowed"
    assert Draft.objects.filter(pk=draft["DraftID"]).exists()


def test_another_agents_draft_is_404(owner: Any, teammate: Any, original: Message) -> None:
    draft = _create(owner, {"subject": "mine"})

    assert teammate.client.get(f"/v1/drafts/{draft['DraftID']}").status_code == 404
    assert teammate.client.patch(f"/v1/drafts/{draft['DraftID']}", {"body": "x"}, format="json").status_code == 404
    assert teammate.client.delete(f"/v1/drafts/{draft['DraftID']}").status_code == 404
    assert teammate.client.post(f"/v1/drafts/{draft['DraftID']}/send").status_code == 404
    assert teammate.client.get("/v1/drafts").json()["items"] == []
    # Nor may a draft answer another agent's message.
    stolen = teammate.client.post("/v1/drafts", {"in_reply_to": original.id}, format="json")
    assert stolen.status_code == 404


def test_it_refuses_bad_fields(owner: Any) -> None:
    assert (
        owner.client.post("/v1/drafts", {"to": "not an address"}, format="json").json()["error"]["code"]
        == "invalid_address"
    )
    assert owner.client.post("/v1/drafts", {"bogus": 1}, format="json").json()["error"]["code"] == "unknown_field"
    past = owner.client.post("/v1/drafts", {"send_at": "2020-01-01T00:00:00Z"}, format="json")
    assert past.json()["error"]["code"] == "invalid_send_at"
