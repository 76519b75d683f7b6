"""Every mail of the shared corpus of real broken mails and of our own regression set
(tests/mail/corpus.py) ends stored with its raw bytes identical, and indexed, except the
listed few that the limits quarantine, each for its stated reason. A mail that the parser
cannot read is a bug to fix, not a quarantine to accept: the lists below fail on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mail.models import Message
from mail.parsing import parse_mail
from mail.storage import raw_read
from tests.mail.corpus import CORPUS, CORPUS_FILES, CORPUS_SIZE, TESTDATA_FILES, corpus_required

# Corpus mails that end quarantined, by path, with the start of their reason.
QUARANTINED_CORPUS = {
    "flanker/enclosed-endless.eml": "more than 1000 MIME parts",
    "flanker/long-header.eml": "header block larger than 131072 bytes",
}
QUARANTINED_TESTDATA = {
    "mime-nested-40-deep.eml": "MIME nesting deeper than",
}


def _check(path: Path, owner: Any, deliver: Any, quarantined: dict[str, str], name: str) -> None:
    raw = path.read_bytes()
    deliver(raw, to=owner.address)
    message = Message.objects.get(agent=owner.agent)
    assert raw_read(message.storage_key) == raw
    assert message.size == len(raw)
    assert (message.disposition, message.quarantine_reason[: len(quarantined.get(name, ""))]) == (
        (Message.Disposition.QUARANTINED, quarantined[name]) if name in quarantined else (Message.Disposition.INBOX, "")
    ), message.quarantine_reason


@pytest.mark.django_db
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_mail_is_stored_and_indexed_unless_listed_as_quarantined(path: Path, owner: Any, deliver: Any) -> None:
    _check(path, owner, deliver, QUARANTINED_CORPUS, str(path.relative_to(CORPUS)))


@pytest.mark.django_db
@pytest.mark.parametrize("path", TESTDATA_FILES, ids=lambda p: p.name)
def test_regression_mail_is_stored_and_indexed_unless_listed_as_quarantined(
    path: Path, owner: Any, deliver: Any
) -> None:
    _check(path, owner, deliver, QUARANTINED_TESTDATA, path.name)


def test_the_corpus_is_all_there() -> None:
    corpus_required()
    assert len(CORPUS_FILES) == CORPUS_SIZE
    assert all(p.is_file() for p in CORPUS_FILES)
    assert {str(p.relative_to(CORPUS)) for p in CORPUS_FILES} >= set(QUARANTINED_CORPUS)
    assert {p.name for p in TESTDATA_FILES} >= set(QUARANTINED_TESTDATA)


def test_exactly_the_listed_corpus_mails_are_quarantined() -> None:
    # The whole list in one diff: each mail quarantined, with its reason.
    corpus_required()
    reasons = {str(p.relative_to(CORPUS)): parse_mail(p.read_bytes()).quarantine_reason for p in CORPUS_FILES}
    quarantined = {name: reason for name, reason in reasons.items() if reason}

    assert {name: reason[: len(QUARANTINED_CORPUS.get(name, ""))] for name, reason in quarantined.items()} == (
        QUARANTINED_CORPUS
    )
