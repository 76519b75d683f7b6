"""mail.parsing.make_preview: the preview collapses only a prefix of the body, and must
answer exactly what collapsing the whole body would."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mail.parsing import PREVIEW_CHARS, make_preview


def _whole_body(text: str) -> str:
    # The definition: every whitespace run one space, NULs dropped, trimmed, then cut.
    return re.sub(r"\s+", " ", text.replace("\x00", "")).strip()[:PREVIEW_CHARS]


# Runs long enough to straddle the prefix the function collapses first.
_pieces = st.one_of(
    st.text(alphabet="ab é中", min_size=1, max_size=8),
    st.sampled_from([" ", "\n", "\t", "\r\n", "\u3000", "\u2028", "\x00"]),
    st.builds(lambda c, n: c * n, st.sampled_from([" ", "\n", "\x00", "x"]), st.integers(1, 3 * PREVIEW_CHARS)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_pieces, max_size=60).map("".join))
def test_it_equals_collapsing_the_whole_body(text: str) -> None:
    assert make_preview(text) == _whole_body(text)


def test_a_long_body_with_a_long_whitespace_gap_still_reaches_the_later_words() -> None:
    text = "start" + " " * (10 * PREVIEW_CHARS) + "end " + "word " * 500
    assert make_preview(text) == _whole_body(text)
    assert make_preview(text).startswith("start end word")


def test_trailing_whitespace_at_the_cut_is_trimmed() -> None:
    text = "x" * (PREVIEW_CHARS - 1) + " " * (5 * PREVIEW_CHARS)
    assert make_preview(text) == "x" * (PREVIEW_CHARS - 1)


def test_a_space_that_lands_on_the_last_kept_character_is_kept_when_words_follow() -> None:
    # The first prefix collapses to exactly PREVIEW_CHARS characters ending in a space;
    # only the rest of the body says whether that space is trailing or not.
    text = "x" * (PREVIEW_CHARS - 1) + " " * (2 * PREVIEW_CHARS) + "y"
    assert make_preview(text) == "x" * (PREVIEW_CHARS - 1) + " "
