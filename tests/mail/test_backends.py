"""The embedded email backends: LocalEmailBackend (agents in-process, others to the
outbox folder) and RelayEmailBackend (OUTBOUND_SMTP_URL), over real SMTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, get_connection, send_mail

from mail.backends import RelayEmailBackend, smtp_url_params
from mail.dispatch import TransientSendError, message_dispatch
from mail.models import InboundDelivery, Message
from mail.sending import Outgoing, message_send
from tests.conftest import free_port


def test_it_parses_smtp_urls() -> None:
    assert smtp_url_params("smtp://relay.example.com") == {
        "host": "relay.example.com",
        "port": 25,
        "username": "",
        "password": "",
        "use_tls": False,
        "use_ssl": False,
        "timeout": 30,
    }
    starttls = smtp_url_params("smtp+starttls://me%40example.com:p%2Fss@relay.example.com?timeout=5")
    assert (starttls["port"], starttls["use_tls"], starttls["username"], starttls["password"], starttls["timeout"]) == (
        587,
        True,
        "me@example.com",
        "p/ss",
        5,
    )
    assert smtp_url_params("smtps://relay.example.com:2465")["use_ssl"] is True
    assert smtp_url_params("smtps://relay.example.com:2465")["port"] == 2465


@pytest.mark.parametrize("url", ["http://relay.example.com", "smtp://", "relay.example.com:25"])
def test_it_names_the_setting_when_the_url_is_wrong(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="OUTBOUND_SMTP_URL"):
        smtp_url_params(url)


def test_the_relay_needs_a_url(settings: Any) -> None:
    settings.OUTBOUND_SMTP_URL = ""
    with pytest.raises(ImproperlyConfigured, match="OUTBOUND_SMTP_URL"):
        RelayEmailBackend()


@pytest.mark.django_db
def test_djangos_send_mail_reaches_agents_and_the_outbox(
    settings: Any, owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sent = send_mail(
            "From the admin",
            "Hello agent",
            "ops@example.com",
            [owner.address, "human@example.net"],
            connection=get_connection("mail.backends.LocalEmailBackend"),
        )

    assert sent == 1
    message = Message.objects.get(agent=owner.agent)
    assert message.subject == "From the admin"
    assert message.delivery.source == InboundDelivery.Source.INTERNAL
    envelopes = [json.loads(p.read_text()) for p in Path(settings.OUTBOX_DIR).glob("*.envelope.json")]
    assert {"from": "ops@example.com", "to": ["human@example.net"]} in envelopes


@pytest.mark.django_db
def test_a_repeated_local_delivery_makes_no_second_inbox_item(
    owner: Any, django_capture_on_commit_callbacks: Any
) -> None:
    connection = get_connection("mail.backends.LocalEmailBackend")
    email = EmailMessage("Twice", "b", "ops@example.com", [owner.address])
    email.assmbl_message_id = "msg_fixed"  # type: ignore[attr-defined]
    with django_capture_on_commit_callbacks(execute=True):
        connection.send_messages([email])
        connection.send_messages([email])

    assert Message.objects.filter(agent=owner.agent).count() == 1


def _wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_it_relays_to_the_smtp_url(settings: Any, smtp_listener: tuple[str, int], owner: Any, teammate: Any) -> None:
    host, port = smtp_listener
    settings.EMAIL_BACKEND = "mail.backends.RelayEmailBackend"
    settings.OUTBOUND_SMTP_URL = f"smtp://{host}:{port}"

    response = owner.client.post(
        "/v1/send", {"to": teammate.address, "subject": "Over SMTP", "body": "relayed"}, format="json"
    )

    assert response.status_code == 202
    outbound = Message.objects.get(pk=response.json()["MessageID"])
    assert outbound.status == Message.Status.SENT
    assert outbound.provider_message_id == outbound.internet_message_id
    assert _wait_for(lambda: Message.objects.filter(agent=teammate.agent).exists())
    received = Message.objects.get(agent=teammate.agent)
    assert received.subject == "Over SMTP"
    assert received.internet_message_id == outbound.internet_message_id
    assert received.delivery.source == InboundDelivery.Source.SMTP


@pytest.mark.django_db
def test_an_unreachable_relay_is_transient_and_the_retry_sends(settings: Any, owner: Any) -> None:
    settings.EMAIL_BACKEND = "mail.backends.RelayEmailBackend"
    settings.OUTBOUND_SMTP_URL = f"smtp://127.0.0.1:{free_port()}?timeout=2"
    message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))

    with pytest.raises(TransientSendError):
        message_dispatch(message_id=message.id)

    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (Message.Status.QUEUED, "")
    settings.EMAIL_BACKEND = "mail.backends.LocalEmailBackend"
    assert message_dispatch(message_id=message.id).status == Message.Status.SENT


@pytest.mark.django_db
def test_the_task_gives_up_after_its_retries_and_marks_the_message_failed(settings: Any, owner: Any) -> None:
    from mail.tasks import send_message

    settings.EMAIL_BACKEND = "mail.backends.RelayEmailBackend"
    settings.OUTBOUND_SMTP_URL = f"smtp://127.0.0.1:{free_port()}?timeout=2"
    message = message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject="s", body="b"))

    # The last of its retries (request.retries == max_retries): nothing left to try.
    send_message.apply(args=[message.id], retries=send_message.max_retries)

    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert "gave up after 12 retries" in message.status_detail
