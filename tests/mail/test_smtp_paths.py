"""The listener's shortcut for MAIL and RCPT paths answers exactly as aiosmtpd's parser does."""

from __future__ import annotations

from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from compat.aiosmtpd import PLAIN_PATH
from mail.smtp import IngestSMTP

# Characters that matter to the path grammar, and a few that do not.
ATEXT = "aZ09!#$%&'*+/=?^_`{|}~-"
SPECIALS = '.@<>()[]\\",:; \t\r\x00é'
piece = st.text(alphabet=ATEXT + SPECIALS, max_size=12)
atom = st.text(alphabet=ATEXT + "-", min_size=1, max_size=8)
plain = st.builds(
    lambda local, domain, rest: f"<{'.'.join(local)}@{'.'.join(domain)}>{rest}",
    st.lists(atom, min_size=1, max_size=3),
    st.lists(st.text(alphabet="aZ09-", min_size=1, max_size=6), min_size=1, max_size=3),
    st.sampled_from(
        [
            "",
            " SIZE=5321",
            "  BODY=8BITMIME",
            "\t SMTPUTF8",
            "x",
            " (comment) SIZE=1",
            " \u00a0X",
            "> extra",
            " SIZE=1 \t",
        ]
    ),
)


def answer(session: SMTP, arg: str) -> object:
    # Some malformed paths make the email package's tokenizer raise (IndexError): then
    # both must raise alike.
    try:
        return session._getaddr(arg)
    except Exception as exc:
        return type(exc)


@pytest.fixture(scope="module")
def sessions() -> tuple[SMTP, SMTP]:
    return IngestSMTP(object()), SMTP(object())


@settings(max_examples=3000, deadline=None)
@given(arg=st.one_of(plain, st.builds(lambda a, b, c: f"<{a}@{b}>{c}", piece, piece, piece), piece))
def test_same_answer_as_aiosmtpd(sessions: tuple[SMTP, SMTP], arg: str) -> None:
    ours, theirs = sessions
    assert answer(ours, arg) == answer(theirs, arg)


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("<agent@agents.example>", ("agent@agents.example", "")),
        (
            "<first.last+tag@mail.example.org> SIZE=5321 BODY=8BITMIME",
            ("first.last+tag@mail.example.org", "SIZE=5321 BODY=8BITMIME"),
        ),
        ("<a@b>  \t SMTPUTF8", ("a@b", "SMTPUTF8")),
    ],
)
def test_plain_paths_take_the_shortcut(sessions: tuple[SMTP, SMTP], arg: str, expected: tuple[str, str]) -> None:
    # The usual paths must not fall through to the slow parser (the point of the override).
    assert PLAIN_PATH.match(arg)
    assert sessions[0]._getaddr(arg) == expected == sessions[1]._getaddr(arg)


def test_local_part_limit_is_kept() -> None:
    ours, theirs = IngestSMTP(object()), SMTP(object())
    ours.local_part_limit = theirs.local_part_limit = 4
    for arg in ("<abcd@x.example>", "<abcde@x.example> SIZE=1"):
        assert ours._getaddr(arg) == theirs._getaddr(arg)
    assert ours._getaddr("<abcde@x.example>") == (None, None)


def test_a_real_conversation_takes_either_way(smtp_listener: Any, owner: Any) -> None:
    """Through the listener (smtplib): a plain path, and paths only aiosmtpd's parser reads
    (a quoted local part, a comment, the null sender), all reach the envelope as they would
    without the shortcut; a malformed one gets aiosmtpd's 553."""
    import smtplib

    from mail.models import InboundDelivery
    from tests.mime import build_mail

    senders = ["plain@example.com", '"quoted name"@example.com', ""]
    with smtplib.SMTP(*smtp_listener) as client:
        client.ehlo()
        for sender in senders:
            code, _ = client.docmd("MAIL", f"FROM:<{sender}>")
            assert code == 250, sender
            code, _ = client.docmd("RCPT", f"TO:<{owner.address}> (the agent)")
            assert code == 250
            code, _ = client.data(build_mail(to=owner.address, subject=f"from {sender or 'null'}"))
            assert code == 250
        assert client.docmd("MAIL", "FROM:<a@@b>")[0] == 553

    # The null reverse-path (a bounce) is kept as "<>", as aiosmtpd and MTAs' logs write it.
    assert sorted(InboundDelivery.objects.values_list("envelope_from", flat=True)) == sorted(
        ["plain@example.com", '"quoted name"@example.com', "<>"]
    )


def test_the_listeners_sessions_take_the_shortcut() -> None:
    from mail.smtp import smtp_controller

    # The override is wired: a session built as the listener builds it.
    assert type(smtp_controller("127.0.0.1", 0).factory()) is IngestSMTP
