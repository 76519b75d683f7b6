"""manage.py consume_sqs against a moto queue: SNS-wrapped and raw SES notifications are
ingested once, deleted only after the durable step; refused ones stay on the queue."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import call_command

from mail.models import InboundDelivery, Message
from tests.aws.conftest import BUCKET, REGION
from tests.aws.sns_signing import FakeFetcher, Signer, ses_notification, sns_notification
from tests.conftest import Persona
from tests.mime import build_mail


@pytest.fixture
def queue(s3: Any, settings: Any) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="assmbl-inbound")["QueueUrl"]
    settings.SES_SQS_QUEUE_URL = url
    settings.SES_SQS_VISIBILITY_SECONDS = 0  # a refused message is visible again at once
    return sqs, url


def _consume() -> str:
    out = StringIO()
    call_command("consume_sqs", "--once", "--wait", "0", stdout=out)
    return out.getvalue()


def _left(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_it_ingests_sns_wrapped_and_raw_notifications(
    owner: Persona,
    s3: Any,
    queue: tuple[Any, str],
    signer: Signer,
    fetcher: FakeFetcher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sqs, url = queue
    for message_id, subject in (("sqs-1", "wrapped"), ("sqs-2", "raw")):
        s3.put_object(Bucket=BUCKET, Key=f"raw/{message_id}", Body=build_mail(to=owner.address, subject=subject))
    wrapped = signer.sign(sns_notification(ses_notification(message_id="sqs-1", recipients=[owner.address])))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(wrapped))
    sqs.send_message(
        QueueUrl=url, MessageBody=json.dumps(ses_notification(message_id="sqs-2", recipients=[owner.address]))
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert "accepted=2" in _consume()

    assert sorted(Message.objects.for_agent(owner.agent).values_list("subject", flat=True)) == ["raw", "wrapped"]
    assert set(InboundDelivery.objects.values_list("source", "external_id")) == {
        ("sqs", "ses:sqs-1"),
        ("sqs", "ses:sqs-2"),
    }
    assert _left(sqs, url) == 0


def test_it_treats_a_redelivery_and_the_sns_path_as_the_same_message(
    client: Any,
    owner: Persona,
    s3: Any,
    queue: tuple[Any, str],
    signer: Signer,
    fetcher: FakeFetcher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sqs, url = queue
    s3.put_object(Bucket=BUCKET, Key="raw/sqs-dup", Body=build_mail(to=owner.address))
    notification = ses_notification(message_id="sqs-dup", recipients=[owner.address])
    with django_capture_on_commit_callbacks(execute=True):
        from tests.aws.sns_signing import sns_post_kwargs

        client.post("/webhooks/ses/inbound", **sns_post_kwargs(signer.sign(sns_notification(notification))))
        for _ in range(3):  # SQS redelivery after a crash before delete
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(notification))
        assert "duplicate=3" in _consume()
    assert InboundDelivery.objects.count() == 1
    assert Message.objects.for_agent(owner.agent).count() == 1
    assert _left(sqs, url) == 0


def test_it_leaves_a_refused_message_on_the_queue(
    owner: Persona, queue: tuple[Any, str], signer: Signer, fetcher: FakeFetcher
) -> None:
    sqs, url = queue
    forged = signer.sign(sns_notification(ses_notification(message_id="sqs-forged", recipients=[owner.address])))
    forged["Message"] = forged["Message"].replace("sqs-forged", "sqs-forget")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(forged))
    sqs.send_message(QueueUrl=url, MessageBody="not json")

    assert "failed=2" in _consume()
    assert not InboundDelivery.objects.exists()
    assert _left(sqs, url) == 2  # the redrive policy moves them to the DLQ after maxReceiveCount


def test_it_keeps_the_message_when_the_durable_step_fails(
    owner: Persona, queue: tuple[Any, str], settings: Any, django_capture_on_commit_callbacks: Any, s3: Any
) -> None:
    # An object outside the mail prefix must be copied; while it is missing (S3 trouble)
    # nothing is recorded and the message stays for redelivery: no loss.
    sqs, url = queue
    notification = ses_notification(message_id="sqs-late", recipients=[owner.address], object_key="other/sqs-late")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(notification))
    assert "failed=1" in _consume()
    assert _left(sqs, url) == 1

    s3.put_object(Bucket=BUCKET, Key="other/sqs-late", Body=build_mail(to=owner.address, subject="late"))
    with django_capture_on_commit_callbacks(execute=True):
        assert "accepted=1" in _consume()
    assert Message.objects.for_agent(owner.agent).get().subject == "late"
    assert _left(sqs, url) == 0


def test_it_skips_the_ses_setup_notice(queue: tuple[Any, str], signer: Signer, fetcher: FakeFetcher, db: Any) -> None:
    sqs, url = queue
    notice = signer.sign(sns_notification("Successfully validated SNS topic for Amazon SES event publishing."))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(notice))
    assert "skipped=1" in _consume()
    assert _left(sqs, url) == 0
