"""The SNS signature matrix, through the real endpoint: genuine v1/v2 messages pass;
tampering, unknown versions/types, foreign topics and bad certificate URLs are refused,
the cheap checks before any certificate fetch."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client

from mail.models import InboundDelivery
from tests.aws.sns_signing import (
    TOPIC,
    FakeFetcher,
    Signer,
    ses_notification,
    sns_notification,
    sns_post_kwargs,
    sns_subscription,
)
from tests.mime import build_mail

URL = "/webhooks/ses/inbound"
RAW = build_mail(subject="signed", to="owner@agents.localhost")
pytestmark = pytest.mark.django_db


def _notification() -> dict[str, Any]:
    return sns_notification(ses_notification(message_id="m-sig-1", recipients=["owner@agents.localhost"], content=RAW))


def _post(client: Client, message: dict[str, Any]) -> int:
    return client.post(URL, **sns_post_kwargs(message)).status_code


@pytest.mark.parametrize("version", ["1", "2"])
def test_it_accepts_a_genuine_notification(client: Client, signer: Signer, fetcher: FakeFetcher, version: str) -> None:
    assert _post(client, signer.sign(_notification(), version)) == 200
    assert InboundDelivery.objects.filter(external_id="ses:m-sig-1").count() == 1
    assert len(fetcher.calls) == 1


def test_it_caches_the_certificate(client: Client, signer: Signer, fetcher: FakeFetcher) -> None:
    assert _post(client, signer.sign(_notification())) == 200
    assert _post(client, signer.sign(_notification())) == 200
    assert fetcher.calls == [_notification()["SigningCertURL"]]


@pytest.mark.parametrize("field", ["Message", "MessageId", "Subject", "Timestamp"])
@pytest.mark.parametrize("version", ["1", "2"])
def test_it_refuses_one_changed_byte_in_a_signed_field(
    client: Client, signer: Signer, fetcher: FakeFetcher, field: str, version: str
) -> None:
    message = signer.sign(_notification(), version)
    value = message[field]
    message[field] = value[:10] + chr(ord(value[10]) ^ 1) + value[11:]
    assert _post(client, message) == 400
    assert not InboundDelivery.objects.exists()


def test_it_refuses_a_signature_made_without_the_subject(client: Client, signer: Signer, fetcher: FakeFetcher) -> None:
    unsigned = _notification()
    signed = signer.sign({k: v for k, v in unsigned.items() if k != "Subject"})
    assert _post(client, {**signed, "Subject": unsigned["Subject"]}) == 400


@pytest.mark.parametrize("field", ["TopicArn", "Type"])
def test_it_refuses_a_changed_topic_or_type_without_fetching(
    client: Client, signer: Signer, fetcher: FakeFetcher, field: str
) -> None:
    message = signer.sign(_notification())
    message[field] = message[field][:-1] + "X"
    assert _post(client, message) == 400
    assert fetcher.calls == []


@pytest.mark.parametrize(
    "changes",
    [
        {"SignatureVersion": "3"},
        {"SignatureVersion": None},
        {"Type": "Notice"},
        {"TopicArn": "arn:aws:sns:us-east-1:999999999999:someone-else"},
        {"SigningCertURL": "http://sns.us-east-1.amazonaws.com/cert.pem"},
        {"SigningCertURL": "https://sns.x.amazonaws.com.evil.com/cert.pem"},
        {"SigningCertURL": "https://sns.us-east-1.amazonaws.com.evil.com/cert.pem"},
        {"SigningCertURL": "https://evil.com@sns.us-east-1.amazonaws.com/cert.pem"},
        {"SigningCertURL": "https://sns.us-east-1.amazonaws.com:8443/cert.pem"},
        {"SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.txt"},
        {"SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem?x=1"},
        {"SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem#f"},
        {"SigningCertURL": "https://evil.com/sns.us-east-1.amazonaws.com/cert.pem"},
    ],
    ids=lambda c: f"{next(iter(c))}={next(iter(c.values()))}",
)
def test_it_refuses_before_fetching_the_certificate(
    client: Client, signer: Signer, fetcher: FakeFetcher, changes: dict[str, Any]
) -> None:
    message = {**signer.sign(_notification()), **changes}
    message = {k: v for k, v in message.items() if v is not None}
    assert _post(client, message) == 400
    assert fetcher.calls == []
    assert not InboundDelivery.objects.exists()


def test_it_accepts_a_china_region_certificate_url(client: Client, signer: Signer, fetcher: FakeFetcher) -> None:
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem"
    assert _post(client, signer.sign({**_notification(), "SigningCertURL": url})) == 200
    assert fetcher.calls == [url]


def test_it_refuses_a_body_that_does_not_match_the_headers(
    client: Client, signer: Signer, fetcher: FakeFetcher
) -> None:
    message = signer.sign(_notification())
    kwargs = sns_post_kwargs(message)
    kwargs["headers"]["x-amz-sns-message-id"] = "other"
    assert client.post(URL, **kwargs).status_code == 400


def test_it_refuses_garbage(client: Client, fetcher: FakeFetcher) -> None:
    assert client.post(URL, data="not json", content_type="text/plain").status_code == 400
    assert client.post(URL, data="[1]", content_type="text/plain").status_code == 400
    assert fetcher.calls == []


def test_it_confirms_a_subscription_to_an_allowed_topic(client: Client, signer: Signer, fetcher: FakeFetcher) -> None:
    message = signer.sign(sns_subscription())
    assert _post(client, message) == 200
    assert fetcher.calls == [message["SigningCertURL"], message["SubscribeURL"]]


def test_it_does_not_confirm_a_subscription_to_another_topic(
    client: Client, signer: Signer, fetcher: FakeFetcher
) -> None:
    message = signer.sign(sns_subscription(topic="arn:aws:sns:us-east-1:999999999999:other"))
    assert _post(client, message) == 400
    assert fetcher.calls == []


def test_it_does_not_confirm_a_tampered_subscribe_url(client: Client, signer: Signer, fetcher: FakeFetcher) -> None:
    message = signer.sign(sns_subscription())
    message["SubscribeURL"] = message["SubscribeURL"].replace("Token=", "Token=x")
    assert _post(client, message) == 400
    assert fetcher.calls == [message["SigningCertURL"]]


def test_it_does_not_visit_a_signed_subscribe_url_outside_sns(
    client: Client, signer: Signer, fetcher: FakeFetcher
) -> None:
    message = signer.sign({**sns_subscription(), "SubscribeURL": "https://evil.com/?Action=ConfirmSubscription"})
    assert _post(client, message) == 400
    assert "https://evil.com/?Action=ConfirmSubscription" not in fetcher.calls


def test_it_uses_the_configured_topics(client: Client, signer: Signer, fetcher: FakeFetcher, settings: Any) -> None:
    settings.SES_SNS_TOPIC_ARNS = []
    assert _post(client, signer.sign(_notification())) == 400
    settings.SES_SNS_TOPIC_ARNS = ["arn:aws:sns:us-east-1:1:a", TOPIC]
    assert _post(client, signer.sign(_notification())) == 200


def test_it_refuses_a_changed_subscription_token(client: Client, signer: Signer, fetcher: FakeFetcher) -> None:
    message = signer.sign(sns_subscription())
    message["Token"] = message["Token"][:-1] + ("0" if message["Token"][-1] != "0" else "1")
    assert _post(client, message) == 400
    assert message["SubscribeURL"] not in fetcher.calls


def test_it_acknowledges_an_unsubscribe_confirmation_without_visiting_anything(
    client: Client, signer: Signer, fetcher: FakeFetcher
) -> None:
    message = signer.sign({**sns_subscription(), "Type": "UnsubscribeConfirmation"})
    assert _post(client, message) == 200
    assert fetcher.calls == [message["SigningCertURL"]]


@pytest.fixture
def webhook_secret(settings: Any) -> str:
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "sns:s3cret"}
    return "sns:s3cret"


def test_with_a_webhook_secret_it_challenges_a_request_without_credentials(
    client: Client, signer: Signer, fetcher: FakeFetcher, webhook_secret: str
) -> None:
    response = client.post(URL, **sns_post_kwargs(signer.sign(_notification())))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")
    assert fetcher.calls == [] and not InboundDelivery.objects.exists()


def test_with_a_webhook_secret_it_refuses_wrong_credentials_before_fetching_the_certificate(
    client: Client, signer: Signer, fetcher: FakeFetcher, webhook_secret: str
) -> None:
    kwargs = sns_post_kwargs(signer.sign(_notification()))
    kwargs["headers"]["authorization"] = "Basic " + base64.b64encode(b"sns:wrong").decode()
    assert client.post(URL, **kwargs).status_code == 400
    assert fetcher.calls == [] and not InboundDelivery.objects.exists()

    kwargs["headers"]["authorization"] = "Basic " + base64.b64encode(webhook_secret.encode()).decode()
    assert client.post(URL, **kwargs).status_code == 200
    assert InboundDelivery.objects.filter(external_id="ses:m-sig-1").count() == 1
