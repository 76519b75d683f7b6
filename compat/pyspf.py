"""pyspf, with every DNS lookup of one check answered by a resolver we choose.

pyspf has no per-check way to choose a resolver: ``spf.query.dns`` (which caches, follows
CNAMEs and counts void lookups) calls the module global ``spf.DNSLookup(name, qtype,
strict, timeout)``, the DNS driver pyspf itself picks at import (dnspython's or pydns's).
``check`` below installs, once, a dispatcher in that slot:
inside a ``check`` it asks the check's resolver (a contextvar, so concurrent checks in
executor threads never see each other's resolver); outside one it calls the driver pyspf
installed, unchanged.

pyspf internals relied on (re-check each on an upgrade):

- ``spf.DNSLookup``: the module global ``query.dns`` looks up through, called as
  ``DNSLookup(name, qtype, strict, timeout)``.
- The driver's answer: a list of ``((name, qtype), value)``; for TXT and SPF the value is
  the record's character-strings as a list of bytes, for MX ``(preference, host)``, for
  A/AAAA/PTR a string (``DNSLookup_dnspython``).
- ``spf.TempError``: what a driver raises for a DNS failure (the check says temperror).

Differential test: tests/compat/test_pyspf.py runs the same checks through ``check`` and
through stock pyspf with its dnspython driver over the same zone.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

import spf

# The pyspf releases this module was read against; tests/compat/test_pyspf.py fails on any
# other, naming what to re-check (the list above).
CHECKED_VERSIONS = ("2.0.14",)

# name, qtype -> records: TXT as str (the strings joined), MX as (preference, host),
# A/AAAA/PTR as str.
Resolve = Callable[[str, str], list[Any]]

TempError = spf.TempError

_check: contextvars.ContextVar[tuple[Resolve, type[BaseException]] | None] = contextvars.ContextVar(
    "pyspf_check", default=None
)
_install_lock = threading.Lock()


def _records(name: str, qtype: str, records: list[Any]) -> list[tuple[tuple[str, str], Any]]:
    """The resolver's records in the shape pyspf's drivers answer with."""
    if qtype in ("TXT", "SPF"):
        return [((name, qtype), [r.encode() if isinstance(r, str) else r]) for r in records]
    return [((name, qtype), r) for r in records]


def _dispatcher(stock: Callable[..., Any]) -> Callable[..., list[Any]]:
    def lookup(name: str, qtype: str, strict: Any = True, timeout: Any = 20) -> list[Any]:
        current = _check.get()
        if current is None:
            return list(stock(name, qtype, strict, timeout))
        resolve, temporary = current
        try:
            records = resolve(name, qtype)
        except temporary as exc:
            raise TempError(f"DNS {exc}") from exc
        return _records(name, qtype, records)

    lookup.compat_dispatcher = True  # type: ignore[attr-defined]
    return lookup


def _install() -> None:
    with _install_lock:
        if not getattr(spf.DNSLookup, "compat_dispatcher", False):
            spf.DNSLookup = _dispatcher(spf.DNSLookup)


def check(
    *,
    ip: str,
    mail_from: str,
    helo: str,
    resolve: Resolve,
    temporary: type[BaseException],
    querytime: float,
) -> str:
    """pyspf's ``check2`` result ("pass", "fail", ...), every lookup answered by ``resolve``;
    ``temporary`` raised by it makes the check a temperror. ``querytime`` bounds the whole
    check, in seconds (RFC 7208 4.6.4)."""
    _install()
    token = _check.set((resolve, temporary))
    try:
        result, _explanation = spf.check2(i=ip, s=mail_from, h=helo, querytime=querytime)
    finally:
        _check.reset(token)
    return str(result)
