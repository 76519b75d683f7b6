"""STARTTLS on the receiving port, with real clients (smtplib, swaks): offered when a
certificate is configured, the TLS version and cipher recorded in a Received header as MTAs
write it (and shown in the admin), the certificate reread on SIGHUP."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assmbl.management.commands.serve import served_env
from mail.models import InboundDelivery, Message
from mail.smtp import smtp_controller
from mail.smtp_tls import SELF_SIGNED_CERT, SELF_SIGNED_KEY, ServerTls, received_transport, self_signed_ensure
from mail.storage import raw_read
from tests.conftest import free_port
from tests.mime import build_mail
from tests.reliability.procs import child_env, start_smtpd, stop


def client_context() -> ssl.SSLContext:
    """What a sending MTA does with opportunistic TLS: encrypt, verify nothing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_ensure(tmp_path / "tls", "agents.localhost")


@pytest.fixture
def tls_listener(transactional_db: Any, certificate: tuple[Path, Path]) -> Iterator[tuple[str, int]]:
    cert, key = certificate
    port = free_port()
    controller = smtp_controller("127.0.0.1", port, tls=ServerTls(str(cert), str(key)))
    controller.start()
    try:
        yield "127.0.0.1", port
    finally:
        controller.stop()


def _deliveries(count: int) -> list[InboundDelivery]:
    deadline = time.monotonic() + 5
    while InboundDelivery.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(InboundDelivery.objects.order_by("received_at"))


def _leaf_sha256(listener: tuple[str, int]) -> str:
    with smtplib.SMTP(*listener, timeout=10) as client:
        client.starttls(context=client_context())
        assert client.sock is not None
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_ehlo_offers_starttls_when_a_certificate_is_configured(tls_listener: Any, smtp_listener: Any) -> None:
    with smtplib.SMTP(*tls_listener, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
    with smtplib.SMTP(*smtp_listener, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        assert client.docmd("STARTTLS")[0] == 454


def test_a_mail_over_starttls_records_version_and_cipher_in_a_received_header(tls_listener: Any, owner: Any) -> None:
    raw = build_mail(to=owner.address, subject="over TLS")
    with smtplib.SMTP(*tls_listener, timeout=10) as client:
        client.ehlo("mta.example.org")
        code, _ = client.starttls(context=client_context())
        assert code == 220
        client.ehlo("mta.example.org")
        assert not client.has_extn("starttls")  # not offered twice
        assert not client.has_extn("auth")  # the receiving port authenticates nobody
        assert client.sendmail("alice@example.com", [owner.address], raw) == {}
    (delivery,) = _deliveries(1)
    stored = raw_read(delivery.storage_key)
    header, rest = stored.split(b";\r\n", 1)
    assert rest.split(b"\r\n", 1)[1] == raw  # the date line, then the mail byte for byte
    assert header.startswith(b"Received: from mta.example.org ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_")
    assert header.endswith(b"bits))\r\n\tby agents.localhost (Assmbl Mail) with ESMTPS")
    assert received_transport(stored).startswith("ESMTPS using TLSv1.3 with cipher TLS_")
    deadline = time.monotonic() + 5
    while not Message.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Message.objects.get().subject == "over TLS"


def test_a_plain_session_stores_the_mail_as_sent(tls_listener: Any, owner: Any) -> None:
    raw = build_mail(to=owner.address, subject="clear")
    with smtplib.SMTP(*tls_listener, timeout=10) as client:
        assert client.sendmail("alice@example.com", [owner.address], raw) == {}
    (delivery,) = _deliveries(1)
    assert raw_read(delivery.storage_key) == raw


def test_the_admin_shows_how_a_delivery_came_in(tls_listener: Any, owner: Any, admin_client: Any) -> None:
    with smtplib.SMTP(*tls_listener, timeout=10) as client:
        client.starttls(context=client_context())
        client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address))
    with smtplib.SMTP(*tls_listener, timeout=10) as client:
        client.sendmail("alice@example.com", [owner.address], build_mail(to=owner.address))
    over_tls, plain = _deliveries(2)
    page = admin_client.get(f"/admin/mail/inbounddelivery/{over_tls.pk}/change/").content.decode()
    assert "ESMTPS using TLSv1.3 with cipher TLS_" in page
    assert "SMTP in clear text" in admin_client.get(f"/admin/mail/inbounddelivery/{plain.pk}/change/").content.decode()


def test_swaks_delivers_over_starttls(tls_listener: Any, owner: Any) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        # Skipped on a developer's machine without it; CI installs it (.ci/run).
        (pytest.fail if os.environ.get("CI") else pytest.skip)("swaks is not installed (Debian package swaks)")
    host, port = tls_listener
    result = subprocess.run(
        [swaks, "--server", f"{host}:{port}", "--tls", "--from", "alice@example.com", "--to", owner.address,
         "--helo", "swaks.example", "--header", "Subject: from swaks"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  220 2.0.0 Ready to start TLS" in result.stdout
    (delivery,) = _deliveries(1)
    assert received_transport(raw_read(delivery.storage_key)).startswith("ESMTPS using TLSv1.")


def test_reload_takes_a_new_certificate_and_keeps_the_old_one_when_the_new_one_is_broken(
    tls_listener: Any, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    tls = ServerTls(str(cert), str(key))
    before = tls.context
    self_signed_ensure(tmp_path / "other", "renewed.example")
    shutil.copy(tmp_path / "other" / SELF_SIGNED_CERT, cert)
    shutil.copy(tmp_path / "other" / SELF_SIGNED_KEY, key)
    assert tls.reload() and tls.context is not before
    cert.write_text("not a certificate")
    kept = tls.context
    assert tls.reload() is False
    assert tls.context is kept


def test_the_listener_rereads_its_certificate_on_sighup(transactional_db: Any, tmp_path: Path) -> None:
    cert, key = self_signed_ensure(tmp_path / "tls", "agents.localhost")
    port = free_port()
    proc = start_smtpd(port, child_env(tmp_path, SMTP_TLS_CERT=str(cert), SMTP_TLS_KEY=str(key), SUBMISSION_PORT="0"))
    try:
        first = _leaf_sha256(("127.0.0.1", port))
        self_signed_ensure(tmp_path / "renewed", "agents.localhost")
        shutil.copy(tmp_path / "renewed" / SELF_SIGNED_CERT, cert)
        shutil.copy(tmp_path / "renewed" / SELF_SIGNED_KEY, key)
        renewed = hashlib.sha256(
            ssl.PEM_cert_to_DER_cert((tmp_path / "renewed" / SELF_SIGNED_CERT).read_text())
        ).hexdigest()
        assert _leaf_sha256(("127.0.0.1", port)) == first  # not before it is told
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (seen := _leaf_sha256(("127.0.0.1", port))) != renewed and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen == renewed
    finally:
        stop(proc)


def test_a_self_signed_pair_is_made_once(tmp_path: Path) -> None:
    cert, key = self_signed_ensure(tmp_path, "agents.localhost")
    assert key.stat().st_mode & 0o777 == 0o600
    pem = cert.read_bytes()
    assert self_signed_ensure(tmp_path, "agents.localhost") == (cert, key)
    assert cert.read_bytes() == pem
    ServerTls(str(cert), str(key))  # loads


def test_make_run_gives_the_listener_a_self_signed_certificate(settings: Any, tmp_path: Path) -> None:
    settings.DATA_DIR, settings.SMTP_TLS_CERT = tmp_path, ""
    env = served_env(18000)
    assert env["SMTP_TLS_CERT"] == str(tmp_path / SELF_SIGNED_CERT)
    ServerTls(env["SMTP_TLS_CERT"], env["SMTP_TLS_KEY"])  # loads
    # A configured certificate is left as it is.
    settings.SMTP_TLS_CERT = "/etc/ssl/mail.pem"
    assert served_env(18000).get("SMTP_TLS_CERT") == os.environ.get("SMTP_TLS_CERT")
