"""A real Postfix relays a mail to the listener over STARTTLS: its own instance in a temp
dir (configuration, queue, log), listening on a free port of 127.0.0.1, with
``smtp_tls_security_level = encrypt`` and the listener as its relayhost. The mail is stored
with the body byte for byte and a Received header that records the TLS version and cipher.

Postfix's ``master`` refuses to run except as root ("the master command is reserved for the
superuser"); it drops to ``mail_owner`` for every daemon. The test therefore needs root
and the Debian package ``postfix`` (CI has both, .ci/run); elsewhere it is skipped.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from mail.models import InboundDelivery
from mail.smtp import smtp_controller
from mail.smtp_tls import ServerTls, received_transport, self_signed_ensure
from mail.storage import raw_read
from tests.conftest import free_port

pytestmark = pytest.mark.slow

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.postfix.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
local_header_rewrite_clients =
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = encrypt
smtp_tls_loglevel = 1
smtp_tls_session_cache_database =
maximal_backoff_time = 10s
minimal_backoff_time = 5s
queue_run_delay = 5s
"""

# Only the services a relay needs, none chrooted (the temp dir has no chroot jail).
MASTER_CF = """\
127.0.0.1:{listen_port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
showq     unix n - n - - showq
postlog   unix-dgram n - n - 1 postlogd
"""

# Shapes a relay must carry unchanged: dot-stuffed lines, a lone dot, trailing
# whitespace, 8-bit UTF-8, a line of 990 octets, an empty last line.
BODY = (
    b"Hello from Postfix.\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"trailing spaces   \r\n"
    b"\ttab first\r\n"
    + "Gr\u00fc\u00dfe, \u65e5\u672c\u8a9e\r\n".encode()
    + b"x" * 990 + b"\r\n"
    b"\r\n"
)  # fmt: skip


def _mail(to: str) -> bytes:
    head = (
        "From: Alice <alice@example.com>\r\n"
        f"To: {to}\r\n"
        "Subject: relayed by Postfix\r\n"
        "Date: Sun, 06 Dec 2026 06:00:00 +0000\r\n"
        "Message-ID: <postfix-relay-1@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
    )
    return head.encode() + b"\r\n" + BODY


def _postfix(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["postfix", "-c", str(root / "etc"), *command], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def postfix_relay(transactional_db: Any) -> Iterator[tuple[tuple[str, int], Path]]:
    """A Postfix instance relaying everything it is given to a listener with STARTTLS:
    ``((host, port) of Postfix's smtpd, its log file)``."""
    if shutil.which("postfix") is None:
        # Skipped on a developer's machine without it; CI installs it (.ci/run).
        (pytest.fail if os.environ.get("CI") else pytest.skip)("postfix is not installed (Debian package postfix)")
    if os.geteuid() != 0:
        pytest.skip("Postfix's master runs only as root (it drops to mail_owner for its daemons)")
    root = Path(tempfile.mkdtemp(prefix="assmbl-postfix-"))
    root.chmod(0o755)  # the daemons, as mail_owner, work in the queue below it
    cert, key = self_signed_ensure(root / "tls", settings.MAIL_DOMAIN)
    relay_port, listen_port = free_port(), free_port()
    controller = smtp_controller("127.0.0.1", relay_port, tls=ServerTls(str(cert), str(key)))
    controller.start()
    (root / "etc").mkdir()
    (root / "queue").mkdir(mode=0o755)  # postfix start makes its subdirectories and data_directory
    (root / "etc" / "main.cf").write_text(MAIN_CF.format(root=root, relay_port=relay_port))
    (root / "etc" / "master.cf").write_text(MASTER_CF.format(listen_port=listen_port))
    started = _postfix(root, "start")
    try:
        log = root / "maillog"
        assert started.returncode == 0, log.read_text() if log.exists() else started.stdout + started.stderr
        yield ("127.0.0.1", listen_port), root / "maillog"
    finally:
        _postfix(root, "stop")
        controller.stop()
        shutil.rmtree(root, ignore_errors=True)


def _connect(address: tuple[str, int]) -> smtplib.SMTP:
    deadline = time.monotonic() + 15
    while True:
        try:
            return smtplib.SMTP(*address, timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_postfix_relays_a_mail_over_starttls_and_the_body_is_stored_byte_exact(postfix_relay: Any, owner: Any) -> None:
    address, maillog = postfix_relay
    raw = _mail(owner.address)
    with _connect(address) as client:
        assert client.sendmail("alice@example.com", [owner.address], raw) == {}
    deadline = time.monotonic() + 60
    while "status=" not in (log := maillog.read_text(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.1)  # Postfix logs the outcome once our 250 has reached it
    assert "status=sent (250 2.0.0 OK" in log, log
    delivery = InboundDelivery.objects.get()
    stored = raw_read(delivery.storage_key)
    assert stored.split(b"\r\n\r\n", 1)[1] == BODY, log
    # Our trace header first: Postfix's EHLO name and the TLS it negotiated with us.
    assert stored.startswith(b"Received: from relay.postfix.test ([127.0.0.1])\r\n\t(using TLSv1.3 with cipher TLS_")
    assert received_transport(stored).startswith("ESMTPS using TLSv1.3 with cipher TLS_")
    # Then Postfix's own, then the headers as the client sent them.
    assert b"\r\n\tby relay.postfix.test (Postfix) with ESMTP id " in stored
    assert stored.split(b"\r\n\r\n", 1)[0].endswith(raw.split(b"\r\n\r\n", 1)[0])
    assert "TLS connection established to 127.0.0.1" in log
