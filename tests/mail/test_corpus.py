"""Every mail of the shared corpus of real broken mails (../shared/corpus) and of our own
regression set (tests/mail/testdata, each file named after its defect) ends stored and
indexed or quarantined with a reason, with its raw bytes identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mail.models import Message
from mail.storage import raw_read

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
TESTDATA = Path(__file__).parent / "testdata"


def _mails(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in {"MANIFEST.tsv", "README.md"})


def _corpus() -> list[Path]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    rows = manifest.read_text().splitlines()[1:]
    return [CORPUS / row.split("\t", 1)[0] for row in rows if row.strip()]


CORPUS_FILES = _corpus()
TESTDATA_FILES = _mails(TESTDATA)


def _check(path: Path, owner: Any, deliver: Any) -> None:
    raw = path.read_bytes()
    deliver(raw, to=owner.address)
    message = Message.objects.get(agent=owner.agent)
    assert raw_read(message.storage_key) == raw
    assert message.size == len(raw)
    if message.disposition == Message.Disposition.QUARANTINED:
        assert message.quarantine_reason
    else:
        assert message.disposition == Message.Disposition.INBOX


@pytest.mark.django_db
@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus is not beside this checkout")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_mail_is_stored_and_indexed_or_quarantined(path: Path, owner: Any, deliver: Any) -> None:
    _check(path, owner, deliver)


@pytest.mark.django_db
@pytest.mark.parametrize("path", TESTDATA_FILES, ids=lambda p: p.name)
def test_regression_mail_is_stored_and_indexed_or_quarantined(path: Path, owner: Any, deliver: Any) -> None:
    _check(path, owner, deliver)


def test_the_corpus_is_all_there() -> None:
    if CORPUS.is_dir():
        assert len(CORPUS_FILES) == 264
