"""Named fault points for the reliability tests.

A point listed in the ASSMBL_FAULTS environment variable (comma-separated) kills the
process on the spot with os._exit, as SIGKILL or a power cut would: no cleanup, no reply.
Unset in every real deployment, the check is one frozenset lookup.
"""

from __future__ import annotations

import os

FAULT_EXIT_CODE = 86
_ACTIVE = frozenset(p.strip() for p in os.environ.get("ASSMBL_FAULTS", "").split(",") if p.strip())


def fault_point(name: str) -> None:
    if name in _ACTIVE:
        os._exit(FAULT_EXIT_CODE)
