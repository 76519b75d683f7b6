"""SES → S3 → SNS → POST /webhooks/ses/inbound → the pipeline, with the mail storage on a
moto bucket: the object SES wrote becomes one indexed message, however often SNS repeats."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from mail.models import InboundDelivery, Message
from tests.aws.conftest import BUCKET
from tests.aws.sns_signing import FakeFetcher, Signer, ses_notification, sns_notification, sns_post_kwargs
from tests.conftest import Persona
from tests.mime import build_mail

URL = "/webhooks/ses/inbound"


def _ses_object(s3: Any, message_id: str, raw: bytes) -> None:
    # Exactly what the receipt rule's S3 action does: <prefix>/<SES message id>.
    s3.put_object(Bucket=BUCKET, Key=f"raw/{message_id}", Body=raw)


def _signed(signer: Signer, message_id: str, recipients: list[str], **kwargs: Any) -> dict[str, Any]:
    return signer.sign(sns_notification(ses_notification(message_id=message_id, recipients=recipients, **kwargs)))


def test_it_indexes_the_object_ses_wrote(
    client: Client,
    owner: Persona,
    s3: Any,
    signer: Signer,
    fetcher: FakeFetcher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _ses_object(s3, "ses-e2e-1", build_mail(to=owner.address, subject="Invoice 42"))
    message = _signed(signer, "ses-e2e-1", [owner.address], verdicts={"dkim": "FAIL", "spam": "GRAY"})

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(URL, **sns_post_kwargs(message)).status_code == 200

    delivery = InboundDelivery.objects.get()
    assert (delivery.source, delivery.external_id, delivery.storage_key) == ("ses", "ses:ses-e2e-1", "ses-e2e-1")
    assert delivery.envelope_from == "alice@example.com"
    assert delivery.status == InboundDelivery.Status.PROCESSED
    assert delivery.size > 0 and len(delivery.sha256) == 64
    item = Message.objects.for_agent(owner.agent).get()
    assert item.subject == "Invoice 42"
    # SES's receipt verdicts arrive intact; trust adds its alignment verdict (DMARC pass).
    ses_verdicts = {"spf": "pass", "dkim": "fail", "dmarc": "pass", "spam": "gray", "virus": "pass", "source": "ses"}
    assert {k: item.authentication.get(k) for k in ses_verdicts} == ses_verdicts
    assert item.authentication["aligned"] is True
    body = owner.client.get("/v1/inbox").content.decode()
    assert item.id in body


def test_it_fans_out_over_every_envelope_recipient(
    client: Client,
    owner: Persona,
    teammate: Persona,
    s3: Any,
    signer: Signer,
    fetcher: FakeFetcher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Bcc'd teammate: only the envelope knows, and routing follows the envelope.
    _ses_object(s3, "ses-fan-1", build_mail(to=owner.address))
    message = _signed(signer, "ses-fan-1", [owner.address, teammate.address, "nobody@agents.localhost"])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(URL, **sns_post_kwargs(message)).status_code == 200
    assert Message.objects.for_agent(owner.agent).count() == 1
    assert Message.objects.for_agent(teammate.agent).count() == 1
    assert InboundDelivery.objects.get().outcome["nobody@agents.localhost"] == "unknown_recipient"


def test_it_copies_an_object_outside_the_mail_prefix(
    client: Client,
    owner: Persona,
    s3: Any,
    signer: Signer,
    fetcher: FakeFetcher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    s3.put_object(Bucket=BUCKET, Key="elsewhere/ses-x-1", Body=build_mail(to=owner.address, subject="copied"))
    message = _signed(signer, "ses-x-1", [owner.address], object_key="elsewhere/ses-x-1")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(URL, **sns_post_kwargs(message)).status_code == 200
    delivery = InboundDelivery.objects.get()
    assert delivery.storage_key.endswith(".eml")
    assert Message.objects.for_agent(owner.agent).get().subject == "copied"


def test_it_makes_one_message_of_five_deliveries(
    client: Client,
    owner: Persona,
    s3: Any,
    signer: Signer,
    fetcher: FakeFetcher,
    django_capture_on_commit_callbacks: Any,
) -> None:
    _ses_object(s3, "ses-rep-1", build_mail(to=owner.address))
    message = _signed(signer, "ses-rep-1", [owner.address])
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(URL, **sns_post_kwargs(message)).status_code == 200
    assert InboundDelivery.objects.count() == 1
    assert Message.objects.for_agent(owner.agent).count() == 1
    assert owner.agent.events.count() == 1


def test_it_acknowledges_a_notification_it_cannot_use(
    client: Client, owner: Persona, signer: Signer, fetcher: FakeFetcher
) -> None:
    # A sending event on the inbound topic, and SES's plain-text setup notice: retrying won't help.
    bounce = signer.sign(sns_notification({"notificationType": "Bounce", "mail": {"messageId": "b"}}))
    notice = signer.sign(sns_notification("Successfully validated SNS topic for Amazon SES event publishing."))
    assert client.post(URL, **sns_post_kwargs(bounce)).status_code == 200
    assert client.post(URL, **sns_post_kwargs(notice)).status_code == 200
    assert not InboundDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_message_of_ten_concurrent_deliveries(
    owner: Persona, s3: Any, signer: Signer, fetcher: FakeFetcher
) -> None:
    _ses_object(s3, "ses-conc-1", build_mail(to=owner.address))
    message = _signed(signer, "ses-conc-1", [owner.address])
    statuses: list[int] = []
    start = threading.Barrier(10)

    def post() -> None:
        try:
            start.wait()
            statuses.append(Client().post(URL, **sns_post_kwargs(message)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 10
    assert InboundDelivery.objects.filter(external_id="ses:ses-conc-1").count() == 1
    assert Message.objects.for_agent(owner.agent).count() == 1
    assert owner.agent.events.count() == 1
