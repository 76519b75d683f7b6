"""A cheap signal from the process that commits an event to the web processes whose
requests wait for one (the long-poll, the event stream): "agent N has something new".

- PostgreSQL (the stack, and any deployment on it): ``NOTIFY assmbl_events, '<agent pk>'`` in
  the committing transaction; PostgreSQL delivers it at commit, to every listening web
  process on every host.
- Otherwise (embedded, SQLite, one host): one datagram to each web process's unix socket in
  ``DATA_DIR/wake/events``, sent after the commit.

A signal is only a hint that makes a waiter look again now: waiters still look every
now and then without one (a socket whose buffer was full), and a listener that
(re)connects wakes every waiter (``wake(None)``), since it may have missed signals, so nothing waits forever on a lost signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection, transaction

from compat.kombu_fs import unix_address, unix_bind_address

log = logging.getLogger(__name__)

CHANNEL = "assmbl_events"


def _folder() -> Path:
    return Path(settings.DATA_DIR) / "wake" / "events"


def wake_on_commit(agent_pks: Iterable[int]) -> None:
    """Tell waiting web processes, once the current transaction commits, that these agents
    have new events. Call it in the transaction that records them."""
    pks = sorted(set(agent_pks))
    if not pks:
        return
    if connection.vendor == "postgresql":
        # Queued with the transaction: delivered at its commit, dropped with its rollback.
        with connection.cursor() as cursor:
            for pk in pks:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(pk)])
        return
    payload = ",".join(map(str, pks)).encode()
    transaction.on_commit(lambda: _datagrams(payload))


def _datagrams(payload: bytes) -> None:
    folder = _folder()
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return  # no web process waits
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for name in names:
            path = str(folder / name)
            try:
                sender.sendto(payload, unix_address(path))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # its process is gone
            except OSError:
                pass  # a full buffer: that process is awake already; else its fallback poll


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, wake: Callable[[int | None], None]) -> None:
        self.wake = wake

    def datagram_received(self, data: bytes, addr: object) -> None:
        for part in data.split(b","):
            if part.isdigit():
                self.wake(int(part))


async def wake_listen(wake: Callable[[int | None], None]) -> None:
    """Run for the life of the web process: call ``wake(agent_pk)`` for every signal."""
    if connection.vendor == "postgresql":
        await _listen_postgres(wake)
    else:
        await _listen_datagrams(wake)


async def _listen_datagrams(wake: Callable[[int | None], None]) -> None:
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
    bound = unix_bind_address(str(path))
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Datagrams(wake), local_addr=bound, family=socket.AF_UNIX
    )
    try:
        await asyncio.Event().wait()
    finally:
        transport.close()
        for leftover in {str(path), bound}:
            with contextlib.suppress(OSError):
                os.unlink(leftover)


async def _listen_postgres(wake: Callable[[int | None], None]) -> None:
    s = connection.settings_dict
    params = {
        "dbname": s["NAME"],
        "user": s["USER"],
        "password": s["PASSWORD"],
        "host": s["HOST"],
        "port": s["PORT"],
    }
    params = {k: v for k, v in params.items() if v}
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                wake(None)  # whatever was signalled while not listening
                async for notify in conn.notifies():
                    if notify.payload.isdigit():
                        wake(int(notify.payload))
        except (psycopg.Error, OSError):
            log.warning("LISTEN %s lost; waiters poll until it is back", CHANNEL, exc_info=True)
            await asyncio.sleep(1)
