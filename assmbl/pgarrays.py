"""A faster text dumper for the arrays Django 5.2 sends to PostgreSQL.

Django inserts a batch of rows as ``INSERT ... SELECT * FROM UNNEST(%s::varchar[], ...)``:
one array per column. With client-side binding (Django's default) psycopg writes each
array in PostgreSQL's text form, and its stock dumper escapes ``"`` and ``\\`` with a regex
whose replacement runs a Python function per match on Python 3.11. An event's JSON
payload has about a hundred quotes, so with the stock dumper a batch of mail takes longer
to escape than to parse (100 event payloads: 10.6 ms to dump, 0.35 ms with this one).

This dumper quotes every element and escapes it with ``bytes.replace``, which runs in C.
PostgreSQL accepts double quotes around any element ("You can put double quotes around
any element value", docs: Arrays, Array Value Input), so the result means the same.
Nested lists, and lists whose element type is not known yet, keep the stock path.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.array import ListDumper


class QuotingListDumper(ListDumper):
    def dump(self, obj: list[Any]) -> bytes | None:
        sub = self.sub_dumper
        if sub is None or any(isinstance(item, list) for item in obj):
            return super().dump(obj)  # type: ignore[return-value]  # psycopg says Buffer; ListDumper's is bytes
        tokens = []
        for item in obj:
            value = None if item is None else sub.dump(item)
            if value is None:
                tokens.append(b"NULL")
            else:
                tokens.append(b'"' + bytes(value).replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        return b"{" + self.delimiter.join(tokens) + b"}"


def install(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: registers the dumper on each new PostgreSQL
    connection (psycopg 3 only; the adapters map is per connection)."""
    if connection.vendor != "postgresql" or not hasattr(connection.connection, "adapters"):
        return
    connection.connection.adapters.register_dumper(list, QuotingListDumper)
