"""Input serializers: the one place an endpoint's request is both validated and described.

Every /v1 view reads its JSON body through an ``InputSerializer`` and its query string
through ``assmbl.query.query_params``; drf-spectacular builds the OpenAPI schema from the
same classes, so a rule the server enforces is a rule the schema states (a bound, a pattern,
a required field, no unknown field). Rules that belong to the domain (an address that
exists, a label limit per message) stay in the services; these classes check shape.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from assmbl.errors import ValidationFailed

# RFC 5322 §2.1.1: a header line is at most 998 characters; a value longer than that can
# only be folded into a header the receiving side must reassemble, so it is refused.
MAX_HEADER_VALUE = 998

# What may never reach a header: NUL, CR, LF and the other C0 controls but TAB, DEL, the
# C1 controls, and U+2028/U+2029. Python's email package splits header values on every
# str.splitlines() boundary (VT, FF, FS, GS, RS, NEL, LS, PS), so any of them is a line
# break in the built MIME: header injection or a silently cut value.
HEADER_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"
# What str.isspace() calls white space, written out (tests/test_schema.py checks it against
# Python's tables): a schema's `\s` is ECMA's, which differs from Python's (FS, GS, RS, US).
SPACE_CLASS = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000"
# Bodies may hold any text but NUL (SMTP cannot carry it; PostgreSQL cannot store it).
TEXT_PATTERN = "^[^\\u0000]*$"


def unicode_class(predicate: Callable[[str], bool]) -> str:
    """The code points (BMP and beyond, surrogates left out) for which ``predicate`` holds,
    as the inside of a regex character class: so that a schema pattern and the Python check
    it describes use the same Unicode tables, whatever version the client's engine has."""
    ranges: list[tuple[int, int]] = []
    for cp in (*range(0xD800), *range(0xE000, sys.maxunicode + 1)):
        if predicate(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)


def _escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\u{{{cp:x}}}"


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: ``0`` or ``true`` is a 400, never ``"0"`` or
    ``"True"``. No NUL; white space is kept as sent (a trimmed value would pass a
    ``minLength`` the client's value fails, or the reverse)."""

    pattern = TEXT_PATTERN
    pattern_code = "invalid"
    pattern_message = "Must not contain NUL characters."

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        # The pattern replaces DRF's NUL check, so the schema carries it (as `pattern`). A
        # schema has one pattern: a caller's own (which must refuse NUL too) replaces it.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        if not any(isinstance(v, RegexValidator) for v in self.validators):
            self.validators.append(RegexValidator(self.pattern, self.pattern_message, code=self.pattern_code))

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(data)


class HeaderTextField(StrictCharField):
    """A value that becomes (part of) a mail header: no control character, no line break
    of any kind, at most 998 characters unless the caller sets a smaller bound."""

    pattern = HEADER_TEXT_PATTERN
    pattern_code = "header_injection"
    pattern_message = "Must not contain control characters or line breaks."

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_HEADER_VALUE)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanField(serializers.Field[bool, bool, bool, Any]):
    """A JSON boolean: true or false only (DRF's BooleanField also takes "yes", 1, "0")."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data: Any) -> bool:
        if data is True or data is False:
            return data
        self.fail("invalid")
        raise AssertionError  # unreachable; fail() raises

    def to_representation(self, value: bool) -> bool:
        return bool(value)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: ``"5"``, ``5.5`` and ``true`` are refused, as the schema's
    ``type: integer`` says."""

    def to_internal_value(self, data: Any) -> int:
        # JSON Schema counts 36.0 as an integer; "36" and true are not.
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """One of the choices, as the JSON value itself (DRF would take ``1`` for ``"1"``)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 200, "format": "cursor"})
class CursorField(serializers.CharField):
    """The opaque ``next_cursor`` of a previous page (``format: cursor``: only values the
    server handed out are valid)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_blank=False, max_length=200, trim_whitespace=False, **kwargs)


class InputSerializer(serializers.Serializer[Any]):
    """A JSON body: an object of the declared fields and no other (a typo such as
    ``is_unread`` is a 400 ``unknown_field``, never silently ignored).

    ``error_codes`` maps a DRF error code (``required``, ``invalid``, ``max_length``, or a
    validator's code such as ``header_injection``) to the documented API code; the first
    failing field is named in ``details.field``. With no mapping the error is
    ``validation_error`` with DRF's per-field messages in ``details``.
    """

    error_codes: Mapping[str, str] = {}
    default_error_code = "validation_error"

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValidationFailed("The body must be a JSON object.", details={"field": "body"})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationFailed(
                f"Unknown field: {', '.join(map(str, unknown))}.",
                code="unknown_field",
                details={"unknown": unknown, "field": unknown[0]},
            )
        return super().to_internal_value(data)

    def validated(self) -> dict[str, Any]:
        """``is_valid`` that raises the documented error, then the validated data."""
        if not self.is_valid():
            if not self.error_codes:
                raise serializers.ValidationError(self.errors)
            field, detail = _first_error(self.errors)
            code = getattr(detail, "code", None) or ""
            raise ValidationFailed(
                f"{field}: {detail}",
                code=self.error_codes.get(code, self.error_codes.get("*", self.default_error_code)),
                details={"field": field},
            )
        return dict(self.validated_data)


def _first_error(errors: Any, prefix: str = "") -> tuple[str, ErrorDetail | str]:
    """The first (field path, message) of a DRF error tree."""
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            name = str(key) if not prefix or key == "non_field_errors" else f"{prefix}.{key}"
            return _first_error(value, name if key != "non_field_errors" else prefix)
    if isinstance(errors, list) and errors:
        for item in errors:
            if item:
                return _first_error(item, prefix)
    return prefix or "body", errors if isinstance(errors, str) else str(errors)


def input_validate(serializer_class: type[InputSerializer], data: Any, **context: Any) -> dict[str, Any]:
    return serializer_class(data=data, context=context).validated()
