"""kombu's filesystem transport (the embedded mode's broker), waking its consumers at once.

Stock, a consumer that finds its queues empty sleeps ``polling_interval`` (1 s) before it
lists the folder again, and one whose prefetch window is full (``acks_late``, prefetch 1 per
slot) sleeps the same second after each ack. So a lone message waited up to a second, and a
worker took at most ``concurrency`` messages a second however fast its tasks were: 100
sequential single-mail SMTP sessions were indexed at 2 msg/s, and a webhook's kick and its
attempt (two messages on the webhooks queue) lined up behind every other kick.

Here every consuming process binds a unix datagram socket in ``wake_folder``; a publish (in
any process: the SMTP listener, the web server, a task) sends one byte to each socket
there after its file is written, and an ack sends one to its own process's socket (a slot
is free). An idle consumer waits on its socket instead of sleeping, so it lists the folder
again as soon as there is something to take. The wake is only a hint: the folder stays
the truth, and the consumer still lists it every ``polling_interval`` when no wake comes
(a publisher that could not reach a socket, a message from before the consumer started).

kombu internals relied on (re-check each on an upgrade):

- ``virtual.Transport.drain_events(connection, timeout)``: the loop that sleeps
  ``polling_interval`` on ``Empty``; overridden whole, with the wait in place of the sleep.
- ``filesystem.Channel._put(queue, payload)``: replaced (same file name and content, written
  atomically, see its docstring), then the wake; ``_get`` taking only names of the form
  ``<time>_<uuid>.<queue>.msg`` (``filename.partition('.')[2]``), so a ``.part`` file is
  never taken.
- ``virtual.Channel.basic_ack``: wrapped, the wake sent after the stock method returns.
- ``Transport.polling_interval`` and the channel's ``transport_options``.

Differential test: tests/compat/test_kombu_fs.py runs the stock transport and this one
over one folder and compares what is delivered, and how soon.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import tempfile
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

CHECKED_VERSIONS = ("5.7.0",)

WAKE = b"w"


def wake_all(folder: str) -> None:
    """One byte to every consumer's socket in ``folder``; a socket whose process is gone
    (refused, or no longer there) is removed, since nobody else would."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for name in names:
            if name.endswith(".sock"):
                wake_one(sender, os.path.join(folder, name))


def unix_bind_address(path: str) -> str:
    """Where to bind a socket meant to live at ``path``: ``path`` itself, or, when it is too
    long for a unix socket address (108 bytes), a name in the temp folder that ``path``
    links to (unix_address follows the link back)."""
    if len(path.encode()) < 100:
        return path
    bound = os.path.join(tempfile.gettempdir(), os.path.basename(path))
    os.symlink(bound, path)
    return bound


def unix_address(path: str) -> str:
    """Where to send to the socket at ``path``: a path too long for a unix socket address
    (108 bytes) is the link a deep folder holds to the socket bound in the temp folder, and
    the kernel refuses the long name itself, link or not."""
    if len(path.encode()) >= 100 and os.path.islink(path):
        return os.readlink(path)
    return path


def wake_one(sender: socket.socket, path: str) -> None:
    try:
        sender.sendto(WAKE, unix_address(path))
    except BlockingIOError:
        pass  # its buffer is full of wakes already: it will wake
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(OSError):
            os.unlink(path)
    except OSError:
        pass  # a hint only: the consumer's polling still finds the message


class WakeSocket:
    """The consumer's end: a datagram socket bound in the wake folder. Unix socket paths
    are short (108 bytes), so a deep DATA_DIR gets a link to it from the temp folder."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._bound = unix_bind_address(self.path)
        self.sock.bind(self._bound)

    def wait(self, seconds: float) -> None:
        """Until a wake arrives or ``seconds`` pass; every pending wake is consumed."""
        readable, _, _ = select.select([self.sock], [], [], max(0.0, seconds))
        if readable:
            with contextlib.suppress(BlockingIOError):
                while self.sock.recv(64):
                    pass

    def wake(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            wake_one(sender, self._bound)

    def close(self) -> None:
        self.sock.close()
        for path in {self.path, self._bound}:
            with contextlib.suppress(OSError):
                os.unlink(path)


def wake_folder(options: dict[str, Any]) -> str:
    folder = options.get("wake_folder")
    return str(folder) if folder else os.path.join(str(options.get("data_folder_in", ".")), "..", "wake")


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's stub of its base class has no **kwargs
        """kombu's ``_put``, written under a name no reader takes and renamed into place.
        Stock, the file exists (empty) before its bytes are written: the lock it takes is
        one ``_get`` never asks for, so a consumer listing the folder at that instant moved
        an empty file and died on its JSON; a woken consumer lists it at exactly that
        instant."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc
        wake_all(wake_folder(self.transport_options))

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        # A prefetch slot is free: the consumer may take the next message now.
        if isinstance(self.connection, Transport):
            self.connection.wake_self()


class Transport(filesystem.Transport):
    Channel = Channel
    _wake_socket: WakeSocket | None = None

    def wake_self(self) -> None:
        if self._wake_socket is not None:
            self._wake_socket.wake()

    def _waker(self) -> WakeSocket:
        if self._wake_socket is None:
            options = self.client.transport_options if self.client is not None else {}
            self._wake_socket = WakeSocket(wake_folder(dict(options or {})))
        return self._wake_socket

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """kombu's loop, waiting on the wake socket where it slept ``polling_interval``."""
        started = monotonic()
        waker = self._waker()
        interval = self.polling_interval or 1.0
        assert self.cycle is not None  # set up with the transport
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                left = None if timeout is None else timeout - (monotonic() - started)
                if left is not None and left <= 0:
                    raise TimeoutError() from None  # socket.timeout, as kombu raises
                waker.wait(interval if left is None else min(interval, left))
            else:
                return

    def close_connection(self, connection: Any) -> None:
        super().close_connection(connection)
        if self._wake_socket is not None:
            self._wake_socket.close()
            self._wake_socket = None
