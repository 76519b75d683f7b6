"""directory.services.sender_pattern_clean: the one rule for what a sender rule may name."""

from __future__ import annotations

import pytest

from assmbl import domain
from directory.services import sender_pattern_clean


@pytest.mark.parametrize("value", ["Bob@Example.COM.", "example.com", "xn--bcher-kva.example"])
def test_it_lowers_and_keeps_an_address_or_a_domain(value: str) -> None:
    assert sender_pattern_clean(value) == value.lower().strip(".")


@pytest.mark.parametrize(
    "value", ["", "localhost", "a b@example.com", "@example.com", "exa_mple.com", "x" * 64 + ".com"]
)
def test_it_refuses_what_is_neither_with_a_domain_error(value: str) -> None:
    with pytest.raises(domain.Invalid) as raised:
        sender_pattern_clean(value)

    assert raised.value.code == "invalid_pattern"
