"""The search grammar of ``q`` (API.md, "Search grammar"): read once into a small typed
tree (``search_parse``), then compiled to one ``Q`` on the Message queryset
(``search_compile``). ``MessageQuerySet.search`` is the one entry point every listing uses
(inbox, sent, threads, the admin's search box); it passes in how a bare term matches, so
that the guide's meaning of a bare term lives in one place (mail.querysets).

A word is a run of characters outside white space; a double quote starts a part that runs to
the next double quote, white space included, and the quotes are dropped (``"a b"`` is one
term; an unclosed quote runs to the end). A leading ``-`` negates the word. A word whose
unquoted start is ``name:`` with ``name`` one of OPERATORS (any case) is an operator; any
other ``word:`` (``re:``, ``fwd:``, ``https:``) stays text. All terms must match.

``body:`` matches whole words of the message's Text, indexed by the database: on PostgreSQL
the generated column ``mail_messagecontent.body_search`` (``to_tsvector('simple', ...)``,
GIN index), queried with ``websearch_to_tsquery`` on the value as one quoted phrase; on
SQLite the FTS5 table ``mail_messagecontent_fts`` kept by triggers on mail_messagecontent
(mail/migrations/0011_search_grammar.py). Either way it is written in the statement that
writes the content row, so it is in the same transaction; a message is found by ``body:``
once its content has been extracted (mail.message_content).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Upper

from assmbl.domain import InvalidQuery

# The columns a bare search term searches (API.md), joined upper-cased in
# Message.search_upper, in this order (_AT_COLUMNS relies on it), by SEARCH_SEPARATOR. A
# column's own separators (a hostile mail may hold U+0001 anywhere) are written there as
# SEPARATOR_STANDIN, so search_upper holds exactly three separators and a value lies in
# one column or another, never across two. No term of the grammar holds the stand-in (a
# double quote only delimits a phrase): a term that holds either character is tested
# against the columns themselves.
SEARCH_COLUMNS = ("subject", "body_preview", "sender", "from_name")
SEARCH_SEPARATOR = "\x01"
SEPARATOR_STANDIN = '"'

TEXT_OPERATORS = ("from", "to", "cc", "subject", "body", "filename", "label")
FLAGS = ("is:unread", "is:read", "is:archived", "is:verified", "has:attachment")
OPERATORS = (*TEXT_OPERATORS, "is", "has", "before", "after", "larger", "smaller")
# How much of Text body: indexes: PostgreSQL refuses a tsvector over 1 MiB, which 200,000
# characters cannot reach (at most ~5 bytes a character, for unique one-character words).
BODY_INDEX_MAX_CHARS = 200_000
# The FTS5 table of SQLite's body index; PostgreSQL's is a column of the content table.
BODY_FTS_TABLE = "mail_messagecontent_fts"

# Where in search_upper a column's text lies, as a regular expression around the escaped
# value: the Subject is everything before the first separator; a value followed by at most
# one separator lies in the Sender or the From name (the Subject and the BodyPreview are
# followed by two or more). With exactly three separators a row (SEARCH_COLUMNS), each is
# exact: it matches where the columns' icontains does, and nowhere else.
_SEP = SEARCH_SEPARATOR
_AT_COLUMNS = {
    ("subject",): f"^[^{_SEP}]*{{}}",
    ("sender", "from_name"): f"{{}}[^{_SEP}]*({_SEP}[^{_SEP}]*)?$",
}
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"(\d{1,12})([kmg]?)", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# The words of a body: value as FTS5's unicode61 tokenizer cuts them (letters and digits).
_FTS_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Text:
    """A bare term or a quoted phrase: matched as the guide says (MessageQuerySet.search)."""

    value: str


@dataclass(frozen=True)
class Field:
    """``from:`` ``to:`` ``cc:`` ``subject:`` ``body:`` ``filename:`` ``label:`` and its value."""

    name: str
    value: str


@dataclass(frozen=True)
class Flag:
    """One of FLAGS (``is:unread``, ``has:attachment``, ...)."""

    name: str


@dataclass(frozen=True)
class Received:
    """``before:`` (ReceivedAt before the day starts, UTC) or ``after:`` (on or after it)."""

    name: str  # "before" or "after"
    day: dt.date


@dataclass(frozen=True)
class Size:
    """``larger:`` or ``smaller:`` than ``size`` bytes (of the raw MIME)."""

    name: str  # "larger" or "smaller"
    size: int


Node = Text | Field | Flag | Received | Size


@dataclass(frozen=True)
class Term:
    node: Node
    negated: bool = False


def _words(q: str) -> list[list[tuple[str, bool]]]:
    """The words of ``q``, each as its parts: (text, whether it was quoted)."""
    words: list[list[tuple[str, bool]]] = []
    parts: list[tuple[str, bool]] = []
    i = 0
    while i < len(q):
        if q[i].isspace():
            if parts:
                words.append(parts)
                parts = []
            i += 1
        elif q[i] == '"':
            end = q.find('"', i + 1)
            end = len(q) if end < 0 else end
            parts.append((q[i + 1 : end], True))
            i = end + 1
        else:
            end = i
            while end < len(q) and not q[end].isspace() and q[end] != '"':
                end += 1
            parts.append((q[i:end], False))
            i = end
    if parts:
        words.append(parts)
    return words


def _raw(parts: list[tuple[str, bool]]) -> str:
    return "".join(f'"{text}"' if quoted else text for text, quoted in parts)


def search_parse(q: str) -> list[Term]:
    """The terms of ``q``; raises InvalidQuery naming the first malformed one."""
    terms: list[Term] = []
    for parts in _words(q):
        raw = _raw(parts)
        negated = False
        first, quoted = parts[0]
        if not quoted and first.startswith("-") and (len(first) > 1 or len(parts) > 1):
            negated, first = True, first[1:]
        name, colon, rest = first.partition(":")
        if not quoted and colon and name.lower() in OPERATORS:
            value = rest + "".join(text for text, _ in parts[1:])
            terms.append(Term(_operator(name.lower(), value, raw), negated))
            continue
        text = first + "".join(text for text, _ in parts[1:])
        if text:
            terms.append(Term(Text(text), negated))
    if not terms:
        raise InvalidQuery(f"{q!r} holds no search term.", details={"term": q})
    return terms


def _invalid(raw: str, why: str) -> InvalidQuery:
    return InvalidQuery(f"{raw!r} is not a valid search term: {why}", details={"term": raw})


def _operator(name: str, value: str, raw: str) -> Node:
    if not value:
        raise _invalid(raw, f"{name}: needs a value.")
    if name in ("is", "has"):
        flag = f"{name}:{value.lower()}"
        if flag not in FLAGS:
            choices = ", ".join(f for f in FLAGS if f.startswith(name + ":"))
            raise _invalid(raw, f"{name}: takes {choices}.")
        return Flag(flag)
    if name == "before" or name == "after":
        try:
            day = dt.date.fromisoformat(value) if _DATE.fullmatch(value) else None
        except ValueError:
            day = None
        if day is None:
            raise _invalid(raw, f"{name}: takes a date as YYYY-MM-DD.")
        return Received(name, day)
    if name == "larger" or name == "smaller":
        size = _SIZE.fullmatch(value)
        if size is None:
            raise _invalid(raw, f"{name}: takes a size in bytes, or with k, m or g (10k, 2m).")
        return Size(name, int(size[1]) * _SIZE_UNITS[size[2].lower()])
    if name == "body" and not _FTS_TOKEN.search(value):
        raise _invalid(raw, "body: needs a word (letters or digits).")
    return Field(name, value)


def search_compile(terms: list[Term], *, model: Any, vendor: str, text: Callable[[str], Q]) -> Q:
    """One condition on ``model`` (Message) that every term must meet: ``text(value)`` for a
    bare term, the operators on their columns (each served by an index: mail.models and
    mail/migrations/0011_search_grammar.py), negated ones under NOT."""
    condition = Q()
    for term in terms:
        part = _node_q(term.node, model=model, vendor=vendor, text=text)
        condition &= ~part if term.negated else part
    return condition


def _node_q(node: Node, *, model: Any, vendor: str, text: Callable[[str], Q]) -> Q:
    if isinstance(node, Text):
        return text(node.value)
    if isinstance(node, Field):
        return _field_q(node, model=model, vendor=vendor)
    if isinstance(node, Flag):
        return _flag_q(node.name, model=model)
    if isinstance(node, Received):
        start = dt.datetime.combine(node.day, dt.time(), tzinfo=dt.UTC)
        return Q(received_at__lt=start) if node.name == "before" else Q(received_at__gte=start)
    return Q(size__gt=node.size) if node.name == "larger" else Q(size__lt=node.size)


def _related(model: Any, name: str) -> Any:
    """The model behind ``model``'s relation ``name`` (mail.models cannot be imported here:
    it imports mail.querysets, which imports this module)."""
    return model._meta.get_field(name).related_model


def _field_q(node: Field, *, model: Any, vendor: str) -> Q:
    # icontains: a case-insensitive substring with %, _ and \ literal, as a bare term; on
    # PostgreSQL UPPER(col::text) LIKE UPPER(%s). To and Cc have pg_trgm indexes of their
    # own; Subject, Sender and the From name are parts of search_upper (_in_columns).
    value = node.value
    if node.name == "from":
        return _in_columns(value, ("sender", "from_name"), vendor=vendor)
    if node.name == "subject":
        return _in_columns(value, ("subject",), vendor=vendor)
    if node.name in ("to", "cc"):
        return Q(**{f"{node.name}__icontains": value})
    if node.name == "label":  # exact, as GET /v1/inbox?label=
        return Q(Exists(_related(model, "labels").objects.filter(message=OuterRef("pk"), name=value)))
    if node.name == "filename":
        attachments = _related(model, "attachments").objects
        return Q(Exists(attachments.filter(message=OuterRef("pk"), filename__icontains=value)))
    return _body_q(value, model=model, vendor=vendor)


def _in_columns(value: str, columns: tuple[str, ...], *, vendor: str) -> Q:
    """Any of ``columns`` (parts of search_upper) contains ``value``, as icontains says.

    On PostgreSQL one condition on search_upper that says where the value lies in it
    (_AT_COLUMNS): pg_trgm's index serves it, and its histogram tells the planner how many
    messages match. A search_upper LIKE for the index and then the column tests would find
    the same rows, but the planner multiplies the two estimates as if independent and has
    no statistics of UPPER(column): ``from:example7.com``, in 2 % of a mailbox, comes out at
    one message in a million, and the query then reads every match of its trigrams instead
    of walking to its first page (docs/decisions/0041-search-estimates.md)."""
    exact = Q()
    for column in columns:
        exact |= Q(**{f"{column}__icontains": value})
    if SEARCH_SEPARATOR in value or SEPARATOR_STANDIN in value:
        return exact  # in search_upper each stands for either: the columns alone decide
    if vendor != "postgresql":
        return Q(search_upper__contains=Upper(Value(value))) & exact
    return Q(search_upper__regex=Upper(Value(_AT_COLUMNS[columns].format(re.escape(value)))))


def _flag_q(name: str, *, model: Any) -> Q:
    if name == "has:attachment":
        return Q(Exists(_related(model, "attachments").objects.filter(message=OuterRef("pk"))))
    columns = {
        "is:unread": Q(is_read=False),
        "is:read": Q(is_read=True),
        "is:archived": Q(archived=True),
        "is:verified": Q(sender_verified=True),
    }
    return columns[name]


def _body_q(value: str, *, model: Any, vendor: str) -> Q:
    """Messages whose indexed Text holds the words of ``value`` in a row (one word, or a
    phrase). No ORM expression reaches an FTS5 table or a column the model does not have,
    so the subquery is written here, its one parameter bound."""
    content = _related(model, "content")._meta.db_table
    if vendor == "postgresql":
        # Quoted, websearch_to_tsquery reads the value as one phrase: a '-' or 'or' in it is
        # a word, not an operator. The parser cuts it as it cut the Text (an address is one
        # lexeme in both).
        sql = f'SELECT "message_id" FROM "{content}" WHERE "body_search" @@ websearch_to_tsquery(\'simple\', %s)'
        return Q(pk__in=RawSQL(sql, [f'"{value}"']))
    phrase = " ".join(_FTS_TOKEN.findall(value))
    sql = f'SELECT "message_id" FROM "{BODY_FTS_TABLE}" WHERE "{BODY_FTS_TABLE}" MATCH %s'
    return Q(pk__in=RawSQL(sql, [f'body : "{phrase}"']))
