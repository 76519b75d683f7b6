"""POST /v1/messages/{id}/reply: recipients, subject, threading headers, scope, and the
agent-to-agent chain threaded together."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import pytest

from mail.models import Message
from mail.sending import message_reply
from mail.storage import raw_read
from tests.mime import build_mail

pytestmark = pytest.mark.django_db


def _headers(message: Message) -> Any:
    return email.message_from_bytes(raw_read(message.storage_key), policy=policy.default)


def _inbound(deliver: Any, owner: Any, **kwargs: Any) -> Message:
    accepted = deliver(build_mail(**kwargs), to=owner.address)
    return Message.objects.get(delivery=accepted.delivery, agent=owner.agent)


def test_it_replies_to_the_sender_in_the_same_thread(owner: Any, deliver: Any, post: Any) -> None:
    original = _inbound(deliver, owner, to=owner.address, subject="Quote request", body="How much?")

    response = post(owner, f"/v1/messages/{original.id}/reply", {"body": "Ten dollars."})

    assert response.status_code == 202, response.content
    reply = Message.objects.get(pk=response.json()["MessageID"])
    assert reply.to == ["Alice Example <alice@example.com>"]
    assert reply.subject == "Re: Quote request"
    assert reply.thread_id == original.thread_id
    headers = _headers(reply)
    assert headers["In-Reply-To"] == original.internet_message_id
    assert headers["References"] == original.internet_message_id
    assert headers["Subject"] == "Re: Quote request"
    # Mail from a person is not agent-to-agent: no Auto-Submitted.
    assert headers["Auto-Submitted"] is None


def test_it_does_not_stack_re_prefixes_and_honours_reply_to(owner: Any, deliver: Any, post: Any) -> None:
    original = _inbound(deliver, owner, to=owner.address, subject="RE: Quote", headers={"Reply-To": "desk@example.com"})

    reply = Message.objects.get(pk=post(owner, f"/v1/messages/{original.id}/reply", {"body": "ok"}).json()["MessageID"])

    assert reply.subject == "RE: Quote"
    assert reply.to == ["desk@example.com"]


def test_reply_all_copies_everyone_but_the_agent_itself(owner: Any, teammate: Any, deliver: Any, post: Any) -> None:
    original = _inbound(
        deliver,
        owner,
        to=[owner.address, teammate.address],
        headers={"Cc": f"carol@example.com, {owner.address}"},
    )

    response = post(owner, f"/v1/messages/{original.id}/reply", {"body": "Noted.", "reply_all": True})

    reply = Message.objects.get(pk=response.json()["MessageID"])
    assert reply.to == ["Alice Example <alice@example.com>"]
    assert sorted(reply.cc) == sorted([teammate.address, "carol@example.com"])
    assert all(owner.address not in a for a in [*reply.to, *reply.cc])


def test_reply_without_reply_all_goes_to_the_sender_only(owner: Any, teammate: Any, deliver: Any, post: Any) -> None:
    original = _inbound(deliver, owner, to=[owner.address, teammate.address])

    reply = Message.objects.get(pk=post(owner, f"/v1/messages/{original.id}/reply", {"body": "x"}).json()["MessageID"])

    assert reply.cc == []


def test_it_is_404_for_another_agents_message(owner: Any, teammate: Any, deliver: Any, post: Any) -> None:
    original = _inbound(deliver, owner, to=owner.address)

    response = post(teammate, f"/v1/messages/{original.id}/reply", {"body": "mine now"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "message_not_found"
    assert post(teammate, "/v1/messages/msg_doesnotexist/reply", {"body": "x"}).json() == response.json()
    assert not Message.objects.outbound().exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"body": "x", "reply_all": "yes"}, "invalid_field"),
        ({"body": "x", "to": "someone@example.com"}, "unknown_field"),
        ({"body": 5}, "invalid_field"),
        ({"body": "x", "reply_all": 0}, "invalid_field"),
        ({"body": "a\x00b"}, "invalid_field"),
        ({"html": "<p>a\x00b</p>"}, "invalid_field"),
    ],
)
def test_it_rejects_bad_input(owner: Any, deliver: Any, post: Any, body: dict[str, Any], code: str) -> None:
    original = _inbound(deliver, owner, to=owner.address)

    response = post(owner, f"/v1/messages/{original.id}/reply", body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_a_reply_is_idempotent(owner: Any, deliver: Any, post: Any) -> None:
    original = _inbound(deliver, owner, to=owner.address)
    url = f"/v1/messages/{original.id}/reply"

    first = post(owner, url, {"body": "once"}, **{"Idempotency-Key": "r-1"})
    second = post(owner, url, {"body": "once"}, **{"Idempotency-Key": "r-1"})
    third = post(owner, url, {"body": "twice?"}, **{"Idempotency-Key": "r-1"})

    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert third.status_code == 409 and third.json()["error"]["code"] == "idempotency_key_reused"
    assert Message.objects.outbound().count() == 1


def test_an_agent_to_agent_chain_is_one_thread(owner: Any, teammate: Any, post: Any) -> None:
    # A → B
    sent = post(owner, "/v1/send", {"to": teammate.address, "subject": "Plan", "body": "Shall we?"}).json()
    a_first = Message.objects.get(pk=sent["MessageID"])
    b_inbound = Message.objects.get(agent=teammate.agent)
    assert b_inbound.sender_verified is True

    # B → reply → A
    b_reply_id = post(teammate, f"/v1/messages/{b_inbound.id}/reply", {"body": "Yes."}).json()["MessageID"]
    b_reply = Message.objects.get(pk=b_reply_id)
    assert _headers(b_reply)["Auto-Submitted"] == "auto-replied"
    assert b_reply.thread_id == b_inbound.thread_id
    a_inbound = Message.objects.get(agent=owner.agent, direction=Message.Direction.INBOUND)
    assert a_inbound.in_reply_to == a_first.internet_message_id
    assert a_inbound.auto_submitted == "auto-replied"
    assert a_inbound.thread_id == a_first.thread_id

    # A → reply → B: still one thread on both sides.
    post(owner, f"/v1/messages/{a_inbound.id}/reply", {"body": "Great."})
    owner_thread = owner.client.get(f"/v1/threads/{a_first.thread_id}").json()
    assert [(i["Direction"], i["Subject"]) for i in owner_thread["items"]] == [
        ("outbound", "Plan"),
        ("inbound", "Re: Plan"),
        ("outbound", "Re: Plan"),
    ]
    b_thread = teammate.client.get(f"/v1/threads/{b_inbound.thread_id}").json()
    assert [i["Direction"] for i in b_thread["items"]] == ["inbound", "outbound", "inbound"]


def test_mail_an_agent_sends_itself_is_one_thread(owner: Any, post: Any) -> None:
    """The sent copy and the received copy carry one Message-ID: one message, one thread."""
    sent = post(owner, "/v1/send", {"to": owner.address, "subject": "Note to self", "body": "Remember."}).json()
    outbound = Message.objects.get(pk=sent["MessageID"])
    inbound = Message.objects.get(agent=owner.agent, direction=Message.Direction.INBOUND)
    assert inbound.internet_message_id == outbound.internet_message_id

    assert inbound.thread_id == outbound.thread_id
    thread = owner.client.get(f"/v1/threads/{outbound.thread_id}").json()
    assert [i["Direction"] for i in thread["items"]] == ["outbound", "inbound"]


@pytest.mark.parametrize("subject", ["AW: Angebot", "SV: Tilbud", "RE[2]: Quote", "re : Quote"])
def test_a_reply_to_a_subject_threading_reads_as_a_reply_adds_no_second_prefix(
    owner: Any, deliver: Any, post: Any, subject: str
) -> None:
    # One prefix table (mail.threads) for threading and for the reply's subject: what the
    # subject fallback treats as a reply is not prefixed again.
    original = _inbound(deliver, owner, to=owner.address, subject=subject, body="?")

    reply_id = post(owner, f"/v1/messages/{original.id}/reply", {"body": "ok"}).json()["MessageID"]

    assert Message.objects.get(pk=reply_id).subject == subject


def test_the_reply_service_takes_the_fields_as_keyword_arguments(owner: Any, deliver: Any) -> None:
    original = _inbound(deliver, owner, to=owner.address, headers={"Cc": "carol@example.com"}, subject="Plan", body="?")

    reply = message_reply(agent=owner.agent, original=original, body="Agreed.", reply_all=True)

    assert (reply.subject, reply.cc) == ("Re: Plan", ["carol@example.com"])
