"""Several listener processes on one port (``smtpd --reuse-port``, ``SMTP_LISTENERS``): the
kernel spreads the connections over them, and when one dies the others keep serving."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mail.models import Message
from mail.smtp import smtp_controller
from tests.conftest import free_port
from tests.mime import build_mail
from tests.reliability.procs import ROOT, child_env, stop, wait_for_port


def _listener(port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "smtpd", "--host", "127.0.0.1", "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sockets(port: int, state: str) -> dict[int, int]:
    """inode -> 1 for every IPv4 TCP socket on local ``port`` in ``state`` (01 established,
    0A listening), from /proc/net/tcp."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            found[int(fields[9])] = 1
    return found


def _owned(pid: int, inodes: dict[int, int]) -> int:
    """How many of ``inodes`` are open in process ``pid``."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            count += 1
    return count


def _send(port: int, to: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        assert client.sendmail("alice@example.com", [to], build_mail(to=to, subject=subject)) == {}


def _indexed(count: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while Message.objects.count() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return Message.objects.count()


def test_two_listeners_share_the_port_and_survive_each_other(transactional_db: Any, tmp_path: Path, owner: Any) -> None:
    port = free_port()
    env = child_env(tmp_path)
    first = _listener(port, env, "--reuse-port")
    wait_for_port(port, first)
    second = _listener(port, env, "--reuse-port")
    try:
        deadline = time.monotonic() + 20
        while len(_sockets(port, "0A")) < 2 and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_sockets(port, "0A")) == 2, "the second listener did not bind the shared port"

        # Sessions held open at once are spread over both processes (16 connections all
        # landing on one of two sockets would be a 1-in-32,768 chance).
        clients = [smtplib.SMTP("127.0.0.1", port, timeout=20) for _ in range(16)]
        try:
            for client in clients:
                client.ehlo()
            established = _sockets(port, "01")
            served = [_owned(proc.pid, established) for proc in (first, second)]
            assert sum(served) == 16
            assert all(served), served
            for n, client in enumerate(clients):
                raw = build_mail(to=owner.address, subject=f"held {n}")
                assert client.sendmail("alice@example.com", [owner.address], raw) == {}
        finally:
            for client in clients:
                client.quit()
        assert _indexed(16) == 16

        # One listener dies; new connections go to the one still listening.
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        for n in range(8):
            _send(port, owner.address, f"after {n}")
        assert _indexed(24) == 24
    finally:
        stop(first)
        stop(second)
    subjects = set(Message.objects.values_list("subject", flat=True))
    assert subjects == {f"held {n}" for n in range(16)} | {f"after {n}" for n in range(8)}


def test_without_reuse_port_a_second_listener_cannot_bind(transactional_db: Any, tmp_path: Path) -> None:
    port = free_port()
    env = child_env(tmp_path)
    first = _listener(port, env)
    try:
        wait_for_port(port, first)
        second = _listener(port, env)
        assert second.wait(30) != 0
        assert first.poll() is None
    finally:
        stop(first)


def test_listeners_sharing_a_port_all_start() -> None:
    """aiosmtpd checks that a server started by connecting to its port; with a shared port
    that connection may reach a sibling, so our controller builds its server directly."""
    port = free_port()
    controllers = []
    try:
        for _ in range(6):
            controller = smtp_controller("127.0.0.1", port, reuse_port=True, ready_timeout=3)
            controller.start()
            controllers.append(controller)
        assert len(_sockets(port, "0A")) == 6
    finally:
        for controller in controllers:
            controller.stop()
