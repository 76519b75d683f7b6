"""Opaque, URL-safe identifiers with a type prefix (msg_, att_, whk_, ...).

The body is a ULID (48-bit millisecond time + 80 random bits, Crockford base32), so ids
created later sort later, which keeps B-tree inserts cheap; nothing relies on that order.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid() -> str:
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


class PrefixedId:
    """A callable default for a model's primary key: ``default=PrefixedId("msg")``.

    A class rather than a lambda so that migrations can serialise it.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return new_id(self.prefix)

    def deconstruct(self) -> tuple[str, tuple[str], dict[str, str]]:
        return ("assmbl.ids.PrefixedId", (self.prefix,), {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrefixedId) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)
