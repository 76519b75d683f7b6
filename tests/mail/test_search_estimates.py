"""PostgreSQL-only: the planner's estimate of how many messages a search term matches, read
from the statistics of search_upper and body_search (mail/migrations/0020_search_statistics.py).
That estimate is what decides whether a page of q walks the mailbox in listing order or
asks the term's index for every match, so an estimate far from the count is a plan that
reads a whole mailbox (bench/plans-1m.txt).

Each mailbox here is smaller than the sample ANALYZE takes at the default target (300 rows
per unit), so ANALYZE reads every row: the statistics, and each estimate, are the same on
every run."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from mail.message_content import CONTENT_VERSION
from mail.models import Message, MessageContent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

ROWS = 20_000
WORDS = (
    "agent invoice meeting schedule report deploy pipeline review budget contract customer support ticket "
    "release staging verify account password reset quarterly forecast summary attached kindly regards "
    "friday monday update status urgent"
).split()
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Multipliers prime to 1,500: each spreads its word evenly over the pool.
PRIMES = (7, 11, 13, 17, 19, 23, 29, 31, 37, 41)


def _word(g: int, k: int) -> str:
    return WORDS[(g * k + g // 7) % len(WORDS)]


def _messages(agent: Any, *, preview: Any) -> list[Message]:
    return Message.objects.bulk_create(
        [
            Message(
                agent=agent,
                direction="inbound",
                received_at=START + dt.timedelta(minutes=g),
                subject=f"{_word(g, 7).title()} {_word(g, 13)} ref-{g}",
                body_preview=preview(g),
                sender=f"user{g % 500}@example{g % 50}.com",
                from_name=f"{_word(g, 3).title()} {_word(g, 11).title()}",
            )
            for g in range(ROWS)
        ],
        batch_size=2_000,
    )


def _estimated_and_counted(q: str) -> tuple[float, int]:
    qs = Message.objects.search(q).order_by()
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"]), qs.count()


def test_a_phrase_in_a_few_messages_out_of_a_thousand_is_estimated_near_its_count(owner: Any) -> None:
    # One message in 300 says "thanks tomorrow": too few to be sure of a row of the default
    # histogram (101 rows), too many for the planner to read every match of its trigrams
    # (each of them is in a third of the mailbox).
    _messages(
        owner.agent,
        preview=lambda g: (
            f"{_word(g, 17)} thanks tomorrow {_word(g, 19)}"
            if g % 300 == 0
            else f"{_word(g, 17)} {_word(g, 19)} thanks"
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_message")
    estimated, counted = _estimated_and_counted('"thanks tomorrow"')
    assert counted == len(range(0, ROWS, 300))
    assert counted / 3 <= estimated <= counted * 3, (estimated, counted)


def test_a_word_of_one_message_body_is_estimated_rare_among_many_common_words(owner: Any) -> None:
    # Real text: more than a thousand words each in ~1 % of messages (here 1,500 words, ten
    # a message), a tail of rarer ones (each in 5 messages), and a word found in one message.
    messages = _messages(owner.agent, preview=lambda g: "")
    MessageContent.objects.bulk_create(
        [
            MessageContent(
                message=message,
                version=CONTENT_VERSION,
                data={
                    "text": " ".join(f"w{(g * p + 97 * k) % 1500}" for k, p in enumerate(PRIMES))
                    + f" tail{g % 4000} uniq{g}"
                },
            )
            for g, message in enumerate(messages)
        ],
        batch_size=2_000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_messagecontent")
    estimated, counted = _estimated_and_counted("body:uniq12345")
    assert counted == 1
    assert estimated <= ROWS * 0.001, estimated  # the walk of a page pays above ~0.2 % (bench/plans-1m.txt)
    estimated, counted = _estimated_and_counted("body:w7")
    assert counted / 3 <= estimated <= counted * 3, (estimated, counted)


@pytest.mark.parametrize("q", ["from:example7.com", "subject:invoice", "from:example7.com subject:invoice"])
def test_from_and_subject_are_estimated_near_their_count(owner: Any, q: str) -> None:
    # from:example7.com is in 2 % of the mailbox, subject:invoice in ~7 %: estimated from
    # search_upper's histogram, not as one message in a million.
    _messages(owner.agent, preview=lambda g: f"{_word(g, 17)} {_word(g, 19)}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_message")
    estimated, counted = _estimated_and_counted(q)
    assert counted / 3 <= estimated <= counted * 3, (estimated, counted)
