"""Submission for agents, with real clients (smtplib, swaks) on a real submission listener:
STARTTLS, then AUTH with the agent's address and one of its tokens; the mail goes through
the service behind POST /v1/send and shows in GET /v1/sent. Every refusal has its code and
sends nothing."""

from __future__ import annotations

import os
import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from assmbl.throttling import TokenRateThrottle
from directory.models import ApiToken
from directory.services import token_create, token_revoke
from mail.models import Attachment, Message
from mail.smtp_submission import submission_controller
from mail.smtp_tls import ServerTls, self_signed_ensure
from mail.storage import raw_read
from tests.conftest import free_port


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _listener(tls: ServerTls) -> Iterator[tuple[str, int]]:
    port = free_port()
    controller = submission_controller("127.0.0.1", port, tls=tls)
    controller.start()
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()


@pytest.fixture
def submission(transactional_db: Any, tmp_path: Path) -> Iterator[tuple[str, int]]:
    cert, key = self_signed_ensure(tmp_path / "tls", "agents.localhost")
    yield from _listener(ServerTls(str(cert), str(key)))


def mail(sender: str, *, to: str = "bob@example.com", subject: str = "Via SMTP", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Sent by an agent over SMTP.\n")
    message.add_alternative("<p>Sent by an agent over <b>SMTP</b>.</p>", subtype="html")
    return message


def session(listener: tuple[str, int]) -> smtplib.SMTP:
    client = smtplib.SMTP(*listener, timeout=20)
    client.starttls(context=client_context())
    return client


def sent(persona: Any) -> list[dict[str, Any]]:
    response = persona.client.get("/v1/sent")
    assert response.status_code == 200
    return list(response.json()["items"])


def outbound_count() -> int:
    return Message.objects.filter(direction=Message.Direction.OUTBOUND).count()


def test_an_agent_sends_over_starttls_and_auth_and_it_shows_in_sent(submission: Any, owner: Any) -> None:
    with session(submission) as client:
        client.ehlo()
        assert client.has_extn("pipelining") and client.has_extn("enhancedstatuscodes")
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        code, reply = client.login(owner.address, owner.token)
        assert (code, reply[:5]) == (235, b"2.7.0")
        assert client.send_message(mail(owner.address, Cc="carol@example.com"), to_addrs=None) == {}
    (item,) = sent(owner)
    assert item["Subject"] == "Via SMTP"
    message = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert message.agent == owner.agent
    assert (message.to, message.cc, message.bcc) == (["bob@example.com"], ["carol@example.com"], [])


def test_auth_login_works_too_and_envelope_only_recipients_are_bcc(submission: Any, owner: Any) -> None:
    with session(submission) as client:
        client.ehlo()
        client.user, client.password = owner.address.upper(), owner.token
        assert client.auth("LOGIN", client.auth_login)[0] == 235
        refused = client.sendmail(
            owner.address, ["bob@example.com", "hidden@example.com"], mail(owner.address).as_bytes()
        )
    assert refused == {}
    message = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert (message.to, message.bcc) == (["bob@example.com"], ["hidden@example.com"])


def test_auth_before_starttls_is_refused_with_530(submission: Any, owner: Any) -> None:
    with smtplib.SMTP(*submission, timeout=20) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features
        assert client.has_extn("starttls")
        code, reply = client.docmd("AUTH", "PLAIN " + _plain(owner.address, owner.token))
        assert (code, reply[:5]) == (530, b"5.7.0")
        code, reply = client.docmd("MAIL", f"FROM:<{owner.address}>")
        assert (code, reply[:5]) == (530, b"5.7.0")
    assert outbound_count() == 0


def _plain(user: str, password: str) -> str:
    import base64

    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


@pytest.mark.parametrize("case", ["wrong token", "revoked token", "another agent's token", "not an agent address"])
def test_bad_credentials_are_refused_with_535_and_nothing_is_sent(
    submission: Any, owner: Any, teammate: Any, case: str
) -> None:
    user, password = owner.address, owner.token
    if case == "wrong token":
        password = owner.token[:-4] + "abcd"
    elif case == "revoked token":
        token_revoke(token=ApiToken.objects.get(agent=owner.agent))
    elif case == "another agent's token":
        password = teammate.token
    else:
        user = "someone@example.com"
    with session(submission) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(user, password)
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (535, b"5.7.8")
        code, reply = client.docmd("MAIL", f"FROM:<{owner.address}>")
        assert (code, reply[:5]) == (530, b"5.7.0")  # still not authenticated
    assert outbound_count() == 0


def test_mail_from_another_agent_is_refused_with_553(submission: Any, owner: Any, teammate: Any) -> None:
    with session(submission) as client:
        client.login(owner.address, owner.token)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail(teammate.address, ["bob@example.com"], mail(teammate.address).as_bytes())
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (553, b"5.7.1")
    assert outbound_count() == 0
    assert sent(teammate) == []


def test_a_token_revoked_during_the_session_sends_nothing(submission: Any, owner: Any) -> None:
    with session(submission) as client:
        client.login(owner.address, owner.token)
        token_revoke(token=ApiToken.objects.get(agent=owner.agent))
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(owner.address, ["bob@example.com"], mail(owner.address).as_bytes())
        assert (refused.value.smtp_code, refused.value.smtp_error[:5]) == (535, b"5.7.8")
    assert outbound_count() == 0


def test_the_idempotency_header_sends_a_retry_once(submission: Any, owner: Any) -> None:
    raw = mail(owner.address, X_AgentMail_Idempotency_Key="order-42").as_bytes()
    replies = []
    for _ in range(2):
        with session(submission) as client:
            client.login(owner.address, owner.token)
            client.mail(owner.address)
            client.rcpt("bob@example.com")
            replies.append(client.data(raw))
    assert [code for code, _ in replies] == [250, 250]
    assert b"a replay" in replies[1][1] and b"a replay" not in replies[0][1]
    assert outbound_count() == 1
    assert replies[0][1].split()[-1] == Message.objects.get().id.encode()


def test_a_refusal_of_the_send_service_is_an_smtp_refusal_with_its_api_code(submission: Any, owner: Any) -> None:
    with session(submission) as client:
        client.login(owner.address, owner.token)
        message = mail(owner.address, X_Bad="line\x01break")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(owner.address, ["bob@example.com"], message.as_bytes())
        assert refused.value.smtp_code == 550
        assert refused.value.smtp_error.startswith(b"5.6.0")
        assert refused.value.smtp_error.endswith(b"(header_injection)")
    assert outbound_count() == 0


def test_attachments_are_sent_as_uploads_of_the_agent(submission: Any, owner: Any) -> None:
    message = mail(owner.address, X_AgentMail_Idempotency_Key="with-attachment")
    message.add_attachment(b"%PDF-1.4 report", maintype="application", subtype="pdf", filename="report.pdf")
    for _ in range(2):  # the retry stores nothing twice
        with session(submission) as client:
            client.login(owner.address, owner.token)
            assert client.send_message(message) == {}
    sent_message = Message.objects.get(direction=Message.Direction.OUTBOUND)
    attachments = Attachment.objects.filter(agent=owner.agent)
    assert [(a.filename, a.content_type, a.size, a.message_id) for a in attachments] == [
        ("report.pdf", "application/pdf", 15, sent_message.id)
    ]
    assert b'filename="report.pdf"' in raw_read(sent_message.storage_key)


def test_the_api_rate_limit_of_the_token_applies(submission: Any, owner: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "2/hour"})
    replies = []
    with session(submission) as client:
        client.login(owner.address, owner.token)
        for _ in range(3):
            client.mail(owner.address)
            client.rcpt("bob@example.com")
            replies.append(client.data(mail(owner.address).as_bytes()))
    assert [code for code, _ in replies] == [250, 250, 451]
    assert replies[2][1].startswith(b"4.7.1") and b"(rate_limited)" in replies[2][1]
    assert outbound_count() == 2


def test_without_a_certificate_nobody_can_authenticate(transactional_db: Any, owner: Any) -> None:
    for listener in _listener(ServerTls("", "")):
        with smtplib.SMTP(*listener, timeout=20) as client:
            client.ehlo()
            assert not client.has_extn("starttls")
            assert client.docmd("AUTH", "PLAIN " + _plain(owner.address, owner.token))[0] == 538
            assert client.docmd("MAIL", f"FROM:<{owner.address}>")[0] == 530
    assert outbound_count() == 0


def test_swaks_sends_with_tls_and_auth(submission: Any, owner: Any) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        # Skipped on a developer's machine without it; CI installs it (.ci/run).
        (pytest.fail if os.environ.get("CI") else pytest.skip)("swaks is not installed (Debian package swaks)")
    host, port = submission
    result = subprocess.run(
        [swaks, "--server", f"{host}:{port}", "--tls", "--auth", "PLAIN", "--auth-user", owner.address,
         "--auth-password", owner.token, "--from", owner.address, "--to", "bob@example.com",
         "--header", "Subject: from swaks"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "235 2.7.0 Authentication successful" in result.stdout
    assert [item["Subject"] for item in sent(owner)] == ["from swaks"]


def test_another_agents_token_from_another_account_cannot_send_as_the_owner(
    submission: Any, owner: Any, stranger: Any
) -> None:
    other = token_create(kind=ApiToken.Kind.AGENT, account=stranger.agent.account, agent=stranger.agent)
    with session(submission) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(owner.address, other.plaintext)
    assert outbound_count() == 0


def test_a_message_for_bcc_recipients_only_is_refused_as_the_api_refuses_one_without_to(
    submission: Any, owner: Any
) -> None:
    with session(submission) as client:
        client.login(owner.address, owner.token)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(owner.address, ["hidden@example.com"], mail(owner.address, to="bob@example.com").as_bytes())
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.endswith(b"(missing_field)")
    assert outbound_count() == 0
