"""SES tracking events (SNS → anymail's tracking webhook) move outbound messages on:
sent → delivered / bounced / complained, each recorded as an event."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.utils import timezone

from mail.models import Message
from tests.factories import MessageFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

URL = "/anymail/amazon_ses/tracking/"
SES_ID = "0100018c2f6e8a1b-5b1f5f0e-3f1c-4b7a-9d2e-6f0a1b2c3d4e-000000"


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
        to=["bob@example.com"],
        provider_message_id=SES_ID,
        internet_message_id=f"<{SES_ID}@email.amazonses.com>",
    )


def _mail_object(destination: str = "bob@example.com") -> dict[str, Any]:
    return {
        "timestamp": "2026-11-24T12:00:00.000Z",
        "source": "owner@agents.localhost",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/agents.localhost",
        "sendingAccountId": "123456789012",
        "messageId": SES_ID,
        "destination": [destination],
        "headersTruncated": False,
        "headers": [{"name": "Subject", "value": "Hello"}],
        "commonHeaders": {"from": ["owner@agents.localhost"], "to": [destination], "subject": "Hello"},
        "tags": {"ses:configuration-set": ["assmbl"]},
    }


def _bounce() -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "bob@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-24T12:00:01.000Z",
            "feedbackId": "0100018c2f6e9c2d-aaaa-bbbb-cccc-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": _mail_object(),
    }


def _delivery() -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "delivery": {
            "timestamp": "2026-11-24T12:00:01.000Z",
            "processingTimeMillis": 546,
            "recipients": ["bob@example.com"],
            "smtpResponse": "250 ok",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
        "mail": _mail_object(),
    }


def _complaint() -> dict[str, Any]:
    return {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "bob@example.com"}],
            "timestamp": "2026-11-24T12:05:00.000Z",
            "feedbackId": "0100018c2f6e9c2d-dddd-000000",
            "complaintFeedbackType": "abuse",
        },
        "mail": _mail_object(),
    }


def post_sns(client: Any, ses_event: dict[str, Any], *, auth: str = "sns:s3cret", message_id: str = "sns-1") -> Any:
    """What SNS POSTs to an HTTPS subscription: the SES event JSON inside an SNS envelope."""
    envelope = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:assmbl-ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:assmbl-ses-events:1",
    }
    return client.post(
        URL,
        data=json.dumps(envelope),
        content_type="text/plain; charset=UTF-8",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID=message_id,
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
    )


def test_a_bounce_marks_the_message_bounced(client: Any, sent: Message) -> None:
    response = post_sns(client, _bounce())

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == Message.Status.BOUNCED
    assert "bob@example.com" in sent.status_detail
    assert "550 5.1.1" in sent.status_detail
    event = Event.objects.get(type="message.bounced")
    assert event.payload["MessageID"] == sent.id
    assert event.payload["Status"] == "bounced"


def test_a_delivery_then_a_complaint(client: Any, sent: Message) -> None:
    post_sns(client, _delivery(), message_id="sns-1")
    sent.refresh_from_db()
    assert sent.status == Message.Status.DELIVERED

    post_sns(client, _complaint(), message_id="sns-2")
    sent.refresh_from_db()
    assert sent.status == Message.Status.COMPLAINED
    assert list(Event.objects.order_by("seq").values_list("type", flat=True)) == [
        "message.delivered",
        "message.complained",
    ]


def test_a_late_delivery_never_undoes_a_bounce_and_repeats_make_no_events(client: Any, sent: Message) -> None:
    post_sns(client, _bounce(), message_id="sns-1")
    post_sns(client, _bounce(), message_id="sns-1")
    post_sns(client, _delivery(), message_id="sns-2")

    sent.refresh_from_db()
    assert sent.status == Message.Status.BOUNCED
    assert Event.objects.filter(type__startswith="message.").count() == 1


def test_an_event_for_an_unknown_message_is_acknowledged_and_ignored(client: Any, sent: Message) -> None:
    event = _bounce()
    event["mail"]["messageId"] = "someone-elses-id"

    assert post_sns(client, event).status_code == 200
    sent.refresh_from_db()
    assert sent.status == Message.Status.SENT


def test_it_refuses_a_post_without_the_webhook_secret(client: Any, sent: Message) -> None:
    response = post_sns(client, _bounce(), auth="sns:wrong")

    assert response.status_code == 400
    sent.refresh_from_db()
    assert sent.status == Message.Status.SENT
