"""Where the tests find real mail: the shared corpus of real broken mails and our own
regression set (tests/mail/testdata, each file named after its defect).

``CORPUS_DIR`` says where the corpus is (default ``../shared/corpus`` beside the
checkout; its MANIFEST.tsv lists the mails). A test that needs it calls
``corpus_required()``: without the corpus the test is skipped, saying where it looked,
and under CI (``CI`` set) it fails instead, so a CI run never passes without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("CORPUS_DIR") or ROOT.parent / "shared" / "corpus").resolve()
TESTDATA = Path(__file__).parent / "testdata"
# As the corpus's README and MANIFEST.tsv say.
CORPUS_SIZE = 264


def _corpus() -> list[Path]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    rows = manifest.read_text().splitlines()[1:]
    return [CORPUS / row.split("\t", 1)[0] for row in rows if row.strip()]


CORPUS_FILES = _corpus()
TESTDATA_FILES = sorted(p for p in TESTDATA.iterdir() if p.is_file()) if TESTDATA.is_dir() else []


def corpus_required() -> None:
    """Skip the calling test when the corpus is missing; fail it when ``CI`` is set."""
    if CORPUS_FILES:
        return
    reason = f"the mail corpus is not at {CORPUS} (set CORPUS_DIR to the folder that holds MANIFEST.tsv)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI runs the corpus tests, it does not skip them")
    pytest.skip(reason)


def real_mails(*, max_bytes: int | None = None) -> list[bytes]:
    """The bytes of every corpus and regression mail (up to ``max_bytes`` each)."""
    paths = [*CORPUS_FILES, *TESTDATA_FILES]
    return [p.read_bytes() for p in paths if max_bytes is None or p.stat().st_size < max_bytes]
