"""MAIL_OUTBOUND=ses: the worker sends through anymail's Amazon SES backend (moto's
in-process SES) and records the id SES assigned."""

from __future__ import annotations

import email
from collections.abc import Iterator
from email import policy
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from mail.models import Message

pytestmark = pytest.mark.django_db

REGION = "us-east-1"


@pytest.fixture
def ses(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_REGION = REGION
    settings.EMAIL_BACKEND = "anymail.backends.amazon_ses.EmailBackend"
    settings.ANYMAIL = {**settings.ANYMAIL, "AMAZON_SES_CLIENT_PARAMS": {"region_name": REGION}}
    with mock_aws():
        yield ses_backends[DEFAULT_ACCOUNT_ID][REGION]


@pytest.fixture
def post(django_capture_on_commit_callbacks: Any) -> Any:
    def _post(persona: Any, url: str, body: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return persona.client.post(url, body, format="json")

    return _post


def test_it_sends_through_ses_and_records_the_ses_message_id(ses: Any, settings: Any, owner: Any, post: Any) -> None:
    boto3.client("ses", region_name=REGION).verify_domain_identity(Domain=settings.MAIL_DOMAIN)

    response = post(
        owner, "/v1/send", {"to": "bob@example.com", "bcc": "audit@example.com", "subject": "Via SES", "body": "Hello"}
    )

    assert response.status_code == 202
    message = Message.objects.get(pk=response.json()["MessageID"])
    assert message.status == Message.Status.SENT
    [sent] = ses.sent_messages
    assert message.provider_message_id == sent.id
    # SES replaces the Message-ID header with one built from its own id.
    assert message.internet_message_id == f"<{sent.id}@email.amazonses.com>"
    # (moto also adds the To header's addresses to the envelope it reports.)
    assert set(sent.destinations) == {"audit@example.com", "bob@example.com"}
    on_the_wire = email.message_from_string(sent.raw_data, policy=policy.default)
    assert on_the_wire["Subject"] == "Via SES"
    assert on_the_wire["From"] == owner.address
    assert "Bcc" not in on_the_wire


def test_a_message_ses_rejects_is_marked_failed_and_not_retried(ses: Any, owner: Any, post: Any) -> None:
    # No verified identity: SES answers MessageRejected, which no retry can fix.
    response = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Unverified", "body": "Hello"})

    assert response.status_code == 202
    message = Message.objects.get(pk=response.json()["MessageID"])
    assert message.status == Message.Status.FAILED
    assert "MessageRejected" in message.status_detail
    assert ses.sent_messages == []


def test_the_task_is_a_no_op_once_the_message_left_queued(ses: Any, settings: Any, owner: Any, post: Any) -> None:
    from mail.tasks import send_message

    boto3.client("ses", region_name=REGION).verify_domain_identity(Domain=settings.MAIL_DOMAIN)
    message_id = post(owner, "/v1/send", {"to": "bob@example.com", "subject": "Once", "body": "Hello"}).json()[
        "MessageID"
    ]

    send_message.delay(message_id)
    send_message.delay(message_id)

    assert len(ses.sent_messages) == 1
