"""A time limit on a piece of pure-Python work (a converter), enforced with SIGALRM.

Celery's own limits apply only in a prefork worker; this one applies wherever the work runs
on a process's main thread: a prefork child, a solo worker, an eager task in a test. Off the
main thread (an eager task in a threaded web server) no signal can be delivered, so the work
runs without a limit there, and the task's hard ``time_limit`` stays the backstop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class TimeLimitExceeded(BaseException):
    """Raised inside the work when its time is up. A BaseException, so that a converter's
    ``except Exception`` (which turns any error into "cannot read this file") cannot swallow it."""


# After the first alarm, it fires again this often until the block ends: an exception raised
# while the interrupted code was in a finaliser or a __del__ is printed and dropped by Python.
_REFIRE_SECONDS = 0.02
# An alarm this long after the limit means the block ended without putting the timer back
# (a second alarm landed in its own clean-up): the timer then removes itself.
_ORPHAN_SECONDS = 5.0


def _in_finaliser(frame: FrameType | None) -> bool:
    """Whether the interrupted code runs a finaliser (``__del__``, a weakref.finalize callback),
    where Python would print and drop the exception: then the next alarm raises it instead."""
    depth = 0
    while frame is not None and depth < 64:
        code = frame.f_code
        if code.co_name == "__del__" or (code.co_name == "__call__" and code.co_filename.endswith("weakref.py")):
            return True
        frame, depth = frame.f_back, depth + 1
    return False


@contextmanager
def time_limit(seconds: float) -> Iterator[bool]:
    """Raise ``TimeLimitExceeded`` in the block after ``seconds``; yields whether the limit is
    enforced. A timer already set (pytest-timeout's) is put back, less the time spent here."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield False
        return
    active = [True]
    deadline = time.monotonic() + seconds

    def expire(signum: int, frame: FrameType | None) -> None:
        if not active[0]:
            return
        if time.monotonic() > deadline + _ORPHAN_SECONDS:
            active[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        if _in_finaliser(frame):
            return
        raise TimeLimitExceeded(f"ran longer than {seconds:g} s")

    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds, _REFIRE_SECONDS)
    started = time.monotonic()
    try:
        yield True
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)
