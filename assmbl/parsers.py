"""The API's JSON request parser (REST_FRAMEWORK's default): DRF's, plus the two refusals
that every JSON endpoint needs and none should write for itself.

- Nesting deeper than MAX_JSON_DEPTH is refused before decoding: the stdlib decoder recurses
  once per level, so ``[`` x 100,000 raised RecursionError (a 500), and a document a little
  under the interpreter's limit would still blow up later code that walks it.
- A string holding a lone UTF-16 surrogate (``"\\ud800"``: valid JSON syntax, not Unicode
  text, RFC 7493 section 2.1) is refused naming its field: it cannot be encoded as UTF-8, so
  it would fail wherever it is stored, hashed, rendered or put in a mail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, Any, NoReturn

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.utils.json import strict_constant

# Our bodies nest three or four levels ({"outbound": {"allowed_recipients": [...]}}).
MAX_JSON_DEPTH = 64

_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_PARENS = str.maketrans("[{]}", "(())")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Only a \u escape of D800-DFFF can put a surrogate into a decoded string (the UTF-8 codec
# refuses encoded ones), so a body without one needs no walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def json_depth_check(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ParseError (400 ``invalid_json``) when arrays and objects nest deeper than
    max_depth, or their brackets do not balance. Every step is a C-speed pass over the
    text: a Python loop over the tokens of a 1 MB body took ten times its decoding."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    # Outside strings: drop escaped backslashes, then escaped quotes (left to right, as the
    # decoder reads them), and every second piece between quotes is outside a string.
    outside = "".join(text.replace("\\\\", "").replace('\\"', "").split('"')[::2])
    brackets = _NOT_A_BRACKET.sub("", outside).translate(_PARENS)
    # Each pass removes the innermost pairs: one level of nesting.
    levels = 0
    while levels < max_depth and "()" in brackets:
        brackets = brackets.replace("()", "")
        levels += 1
    # Left over: deeper pairs, or brackets never closed (the decoder would recurse into
    # each of those before it found the end missing), or closed but never opened.
    if "()" in brackets or levels + brackets.count("(") > max_depth:
        raise ParseError(f"JSON parse error - arrays and objects nest deeper than {max_depth} levels.")
    if brackets:
        raise ParseError("JSON parse error - unbalanced brackets.")


def _printable(text: str) -> str:
    # The error names the field, and the name itself may hold the surrogate.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_surrogate_check(data: Any) -> None:
    """Raise ValidationError (400 ``validation_error``) naming a field (``subject``,
    ``headers.X-Tag``, ``add[0]``) whose key or string value holds a lone surrogate."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                _surrogate_refused(path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                field = f"{path}.{key}" if path else str(key)
                if _SURROGATE.search(key):
                    _surrogate_refused(field)
                stack.append((field, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def _surrogate_refused(field: str) -> NoReturn:
    raise ValidationError(
        {
            _printable(field) or "body": [
                "A lone UTF-16 surrogate (an escape such as \\ud800 without its pair) is not Unicode text."
            ]
        }
    )


class JSONParser(parsers.JSONParser):
    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]  # new in DRF 3.18, not in the 3.16 stubs
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        json_depth_check(text)
        try:
            data = json.loads(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if _SURROGATE_ESCAPE.search(text):
            json_surrogate_check(data)
        return data
