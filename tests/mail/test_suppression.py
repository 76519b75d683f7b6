"""Suppression: a hard bounce or a complaint (SES tracking) suppresses the address for the
sending agent's account; sends to it are refused; operators list and remove them."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from directory.models import ApiToken
from directory.services import token_create
from mail.models import Message, Suppression
from tests.factories import MessageFactory
from tests.mail.test_tracking import SES_ID, _bounce, _complaint, post_sns

pytestmark = pytest.mark.django_db

BOB = "bob@example.com"


@pytest.fixture(autouse=True)
def webhook_secret(settings: Any) -> None:
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "sns:s3cret"}


@pytest.fixture
def sent(owner: Any) -> Message:
    return MessageFactory(
        agent=owner.agent,
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.SENT,
        sender=owner.address,
        to=[BOB],
        provider_message_id=SES_ID,
    )


def _send(persona: Any, post: Any, to: str = BOB) -> Any:
    return post(persona, "/v1/send", {"to": to, "subject": "Hello again", "body": "b"})


def test_a_hard_bounce_suppresses_the_address_for_the_whole_account(
    client: Any, sent: Message, owner: Any, teammate: Any, stranger: Any, post: Any
) -> None:
    assert post_sns(client, _bounce()).status_code == 200

    suppression = Suppression.objects.get()
    assert (suppression.account, suppression.address, suppression.reason) == (owner.agent.account, BOB, "bounce")
    assert suppression.message == sent
    assert "550 5.1.1" in suppression.detail
    refused = _send(teammate, post)
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "code": "recipient_suppressed",
        "message": refused.json()["error"]["message"],
        "details": {"address": BOB, "reason": "bounce"},
    }
    # Another account's agents still reach Bob.
    assert _send(stranger, post).status_code == 202


def test_a_soft_bounce_suppresses_nothing(client: Any, sent: Message, owner: Any, post: Any) -> None:
    event = _bounce()
    event["bounce"]["bounceType"] = "Transient"
    event["bounce"]["bounceSubType"] = "MailboxFull"

    assert post_sns(client, event).status_code == 200

    assert not Suppression.objects.exists()
    assert _send(owner, post).status_code == 202


def test_a_complaint_suppresses_the_address(client: Any, sent: Message, owner: Any, post: Any) -> None:
    post_sns(client, _complaint())

    assert Suppression.objects.get().reason == "complaint"
    assert _send(owner, post).json()["error"]["code"] == "recipient_suppressed"


def test_a_repeated_notification_keeps_one_suppression(client: Any, sent: Message) -> None:
    post_sns(client, _bounce(), message_id="sns-1")
    post_sns(client, _complaint(), message_id="sns-2")

    assert Suppression.objects.count() == 1


def test_an_operator_lists_and_removes_suppressions(operator: Any, owner: Any, post: Any) -> None:
    Suppression.objects.create(account=owner.agent.account, address=BOB, reason="bounce", detail="550")
    Suppression.objects.create(account=owner.agent.account, address="carol@example.com", reason="complaint")

    listed = operator.get("/v1/suppressions?limit=1")
    assert listed.status_code == 200
    first = listed.json()
    assert [i["address"] for i in first["items"]] == [BOB] and first["has_more"] is True
    rest = operator.get(f"/v1/suppressions?limit=1&cursor={first['next_cursor']}").json()
    assert [i["address"] for i in rest["items"]] == ["carol@example.com"] and rest["has_more"] is False
    assert first["items"][0]["reason"] == "bounce" and first["items"][0]["detail"] == "550"

    assert operator.delete(f"/v1/suppressions/{BOB.upper()}").status_code == 204
    assert _send(owner, post).status_code == 202
    gone = operator.delete(f"/v1/suppressions/{BOB}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "suppression_not_found"


def test_an_operator_of_another_account_neither_sees_nor_removes_them(owner: Any, stranger: Any) -> None:
    Suppression.objects.create(account=owner.agent.account, address=BOB, reason="bounce")
    issued = token_create(kind=ApiToken.Kind.OPERATOR, account=stranger.agent.account)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")

    assert other.get("/v1/suppressions").json()["items"] == []
    assert other.delete(f"/v1/suppressions/{BOB}").status_code == 404
    assert Suppression.objects.count() == 1


def test_an_agent_token_cannot_manage_suppressions(owner: Any) -> None:
    assert owner.client.get("/v1/suppressions").status_code == 403
    assert owner.client.delete(f"/v1/suppressions/{BOB}").status_code == 403


def test_any_cursor_the_listing_format_allows_pages_without_error(operator: Any, owner: Any) -> None:
    Suppression.objects.create(account=owner.agent.account, address=BOB, reason="bounce")
    # A cursor a message listing would hand out: (time, "msg_0"); it pages by its two keys.
    response = operator.get("/v1/suppressions?cursor=WyIyMDIwLTAxLTAxVDAwOjAwOjAwLjAwMDAwMFoiLCJtc2dfMCJd")

    assert response.status_code == 200
    assert [i["address"] for i in response.json()["items"]] == [BOB]
