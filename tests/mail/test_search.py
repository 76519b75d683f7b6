"""q's search grammar (mail.search) through GET /v1/inbox and /v1/sent: each operator alone,
negated, quoted, combined, and each malformed value, on SQLite and (DATABASE_URL) PostgreSQL.

A small mailbox where each message differs from the others in one thing an operator reads;
the table says which messages each q lists."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection

from mail.message_content import CONTENT_VERSION, message_contents_extract
from mail.models import Attachment, Message, MessageContent, MessageLabel
from mail.search import SEPARATOR_STANDIN, Field, Text, search_parse
from tests.factories import MessageFactory
from tests.mime import build_mail

pytestmark = pytest.mark.django_db

# Past the 256 characters of BodyPreview: only body: finds it.
LONG_TEXT = "Dear Ann,\n" + "filler words here. " * 30 + "The zebra crossing is closed; invoice-42 attached."


def _at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=dt.UTC)


@pytest.fixture
def mailbox(owner: Any, teammate: Any) -> dict[str, Message]:
    a = MessageFactory(
        agent=owner.agent, sender="dave@example.com", from_name="Dave Smith", cc=["carol@example.org"],
        subject="Invoice 42 for March", body_preview="please pay", size=5_000, received_at=_at("2026-03-01"),
        sender_verified=True,
    )  # fmt: skip
    b = MessageFactory(
        agent=owner.agent, sender="erin@shop.test", from_name="Erin", subject="Re: your order",
        body_preview="shipping soon", size=50_000, received_at=_at("2026-03-05"), is_read=True,
    )  # fmt: skip
    c = MessageFactory(
        agent=owner.agent, sender="dave@other.test", from_name="", subject="Meeting notes",
        body_preview="see you", size=2_000, received_at=_at("2026-02-01"), archived=True,
    )  # fmt: skip
    MessageLabel.objects.create(message=a, name="finance")
    Attachment.objects.create(
        agent=owner.agent, message=a, kind="inbound", state="stored", filename="Invoice-42.pdf", size=100
    )
    MessageContent.objects.create(message=a, version=CONTENT_VERSION, data={"text": LONG_TEXT})
    MessageContent.objects.create(message=b, version=CONTENT_VERSION, data={"text": "Your parcel ships soon."})
    # Another mailbox matching every term: never listed.
    other = MessageFactory(
        agent=teammate.agent, sender="dave@example.com", from_name="Dave Smith", subject="Invoice 42 for March Re:",
        received_at=_at("2026-03-02"), cc=["carol@example.org"],
    )  # fmt: skip
    MessageContent.objects.create(message=other, version=CONTENT_VERSION, data={"text": LONG_TEXT})
    return {"a": a, "b": b, "c": c}


def _listed(persona: Any, mailbox: dict[str, Message], q: str, path: str = "/v1/inbox", **params: str) -> str:
    response = persona.client.get(f"{path}?{urlencode({'q': q, **params})}")
    assert response.status_code == 200, response.json()
    names = {m.id: name for name, m in mailbox.items()}
    return "".join(names[item["MessageID"]] for item in response.json()["items"])


@pytest.mark.parametrize(
    "q, expected",
    [
        # Bare terms: the guide's substring, all must match, in any order.
        ("invoice", "a"),
        ("INVOICE march", "a"),
        ("march invoice", "a"),
        ("invoice order", ""),
        ('"invoice 42"', "a"),
        ('"42 invoice"', ""),
        ("-invoice", "b"),
        ('-"your order"', "a"),
        ("re:", "b"),  # not an operator: text
        ('"from:dave"', ""),  # quoted: text
        # Each operator alone, and negated.
        ("from:dave", "a"),
        ("from:SMITH", "a"),
        ("FROM:dave", "a"),
        ("-from:dave", "b"),
        ('from:"dave smith"', "a"),
        ("to:owner@", "ab"),
        ("cc:carol", "a"),
        ("-cc:carol", "b"),
        ("subject:order", "b"),
        ("subject:please", ""),  # in the preview, not the subject
        ("label:finance", "a"),
        ("label:Finance", ""),  # label names are exact
        ("-label:finance", "b"),
        ("is:unread", "a"),
        ("is:read", "b"),
        ("-is:read", "a"),
        ("is:verified", "a"),
        ("is:archived", ""),  # archived mail is listed only with include_archived=true
        ("has:attachment", "a"),
        ("-has:attachment", "b"),
        ("filename:invoice-42", "a"),
        ("filename:.docx", ""),
        ("before:2026-03-05", "a"),
        ("after:2026-03-05", "b"),
        ("after:2026-03-01", "ab"),
        ("after:2026-03-02", "b"),
        ("larger:10k", "b"),
        ("smaller:10k", "a"),
        ("larger:5000", "b"),
        ("-larger:1m", "ab"),
        # body: the whole Text, by words.
        ("body:zebra", "a"),
        ("body:ZEBRA", "a"),
        ('body:"zebra crossing"', "a"),
        ('body:"crossing zebra"', ""),
        ("body:zeb", ""),
        ("body:parcel", "b"),
        ("-body:zebra", "b"),
        ("zebra", ""),  # past the preview: not a bare term's
        # A body: value is words, never full-text syntax (FTS5's OR, NEAR, *, tsquery's -).
        ('body:"zebra or crossing"', ""),
        ("body:NEAR(zebra", ""),
        ("body:zebra*", "a"),
        ("body:-zebra", "a"),
        # Combined.
        ("from:dave has:attachment -is:read", "a"),
        ("after:2026-03-01 before:2026-03-05", "a"),
        ("invoice -label:finance", ""),
        ("body:parcel from:erin subject:order", "b"),
    ],
)
def test_it_lists_what_each_query_matches(owner: Any, mailbox: dict[str, Message], q: str, expected: str) -> None:
    assert _listed(owner, mailbox, q) == expected


@pytest.mark.parametrize("q, expected", [("is:archived", "c"), ("from:dave", "ca"), ("-is:archived", "ab")])
def test_it_finds_archived_mail_with_include_archived(
    owner: Any, mailbox: dict[str, Message], q: str, expected: str
) -> None:
    assert _listed(owner, mailbox, q, include_archived="true") == expected


@pytest.mark.parametrize(
    "q, term",
    [
        ("before:2026-13-01", "before:2026-13-01"),
        ("after:yesterday", "after:yesterday"),
        ("invoice after:2026-2-1", "after:2026-2-1"),
        ("larger:abc", "larger:abc"),
        ("smaller:10x", "smaller:10x"),
        ("is:bogus", "is:bogus"),
        ("-has:nope", "has:nope"),
        ("from:", "from:"),
        ('subject:""', 'subject:""'),
        ("body:!!!", "body:!!!"),
        ('""', '""'),
    ],
)
def test_it_refuses_a_malformed_term_naming_it(owner: Any, mailbox: dict[str, Message], q: str, term: str) -> None:
    response = owner.client.get(f"/v1/inbox?{urlencode({'q': q})}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_query"
    assert term in error["message"]
    assert term in error["details"]["term"]


@pytest.mark.parametrize(
    "q, expected",
    [
        ("from:dave", "n"),
        ("from:x@y", "nsp"),
        ("from:boss", ""),
        ("subject:invoice", "s"),
        ("subject:tail", "s"),
        ("subject:preview", ""),
        ("-from:dave", "sp"),
    ],
)
def test_from_and_subject_match_their_own_columns_when_a_column_holds_the_separator(
    owner: Any, q: str, expected: str
) -> None:
    # search_upper joins the columns with U+0001 (mail.search.SEARCH_SEPARATOR); a hostile
    # mail may hold it in any of them, which neither hides a column nor lends its text to another.
    sep = "\x01"
    mailbox = {
        "n": MessageFactory(
            agent=owner.agent, subject="a", body_preview="b", sender="x@y.test", from_name=f"A{sep}Dave"
        ),
        "s": MessageFactory(
            agent=owner.agent, subject=f"x{sep}invoice{sep}tail", body_preview="b", sender="x@y.test", from_name=""
        ),
        "p": MessageFactory(
            agent=owner.agent,
            subject=f"a{sep}{sep}",
            body_preview=f"preview {sep}boss",
            sender="x@y.test",
            from_name="",
        ),
    }
    assert _listed(owner, mailbox, q) == expected


def test_search_upper_holds_three_separators_whatever_the_columns_hold(owner: Any) -> None:
    # A column's own U+0001 is written as the stand-in, a double quote, which no term of
    # the grammar holds: the separators alone say where each column lies (mail.search._AT_COLUMNS).
    message = MessageFactory(
        agent=owner.agent, subject="a\x01b", body_preview='say "hi"\x01', sender="x@y.test", from_name="\x01Dave"
    )
    search_upper = Message.objects.values_list("search_upper", flat=True).get(pk=message.pk)
    assert search_upper == 'A"B\x01SAY "HI""\x01X@Y.TEST\x01"DAVE'


@pytest.mark.parametrize("q", ['a"b"c', '""x', 'subject:"a"b"', '-"x', 'from:"x', '"\\"q"', 'a\\"'])
def test_no_term_of_the_grammar_holds_the_stand_in(q: str) -> None:
    # search_upper writes a column's own separator as SEPARATOR_STANDIN: a term holding it
    # could match there, so the grammar must never yield one (a double quote only delimits).
    values = [t.node.value for t in search_parse(q) if isinstance(t.node, Text | Field)]
    assert values and not any(SEPARATOR_STANDIN in value for value in values), values


@pytest.mark.parametrize(
    "q, expected",
    [
        ('subject:"a b"', ""),
        ("subject:ab", ""),
        ("subject:hi", "q"),
        ('"a b"', ""),
        ("ab", ""),
        ('say "hi"', "q"),
        ("from:dave", "s"),
        ("from:hi", ""),
        ('from:"x@y.test dave"', ""),
    ],
)
def test_a_column_holding_the_separator_or_its_stand_in_lends_no_text_to_a_term(
    owner: Any, q: str, expected: str
) -> None:
    mailbox = {
        "s": MessageFactory(
            agent=owner.agent, subject="a\x01b", body_preview="c", sender="x@y.test", from_name="\x01Dave"
        ),
        "q": MessageFactory(agent=owner.agent, subject='say "hi"', body_preview="c d", sender="z@y.test", from_name=""),
    }
    assert _listed(owner, mailbox, q) == expected


def test_it_searches_sent_mail_with_the_same_grammar(owner: Any) -> None:
    sent = MessageFactory(
        agent=owner.agent, direction="outbound", status="sent", subject="Quote for Bob", to=["bob@x.test"]
    )
    MessageFactory(agent=owner.agent, direction="outbound", status="sent", subject="Quote for Ann", to=["ann@x.test"])
    MessageFactory(agent=owner.agent, subject="Quote for Bob", to=["bob@x.test"])  # inbound: not sent
    response = owner.client.get("/v1/sent?" + urlencode({"q": "quote to:bob@"}))
    assert [item["MessageID"] for item in response.json()["items"]] == [sent.id]
    assert owner.client.get("/v1/sent?q=is:bogus").json()["error"]["code"] == "invalid_query"


def test_body_finds_a_delivered_message_once_its_content_is_extracted(owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, subject="Report", body=LONG_TEXT), to=owner.address)
    message = Message.objects.get()
    # Extraction runs on the content queue after the message commits (mail.message_content);
    # until it has, body: does not know the message.
    MessageContent.objects.filter(message=message).delete()
    assert _listed(owner, {"m": message}, "body:zebra") == ""
    assert message_contents_extract(message_ids=[message.id]) == 1
    assert _listed(owner, {"m": message}, "body:zebra") == "m"
    assert _listed(owner, {"m": message}, 'body:"invoice-42 attached"') == "m"
    # The index follows the content row: rewritten, and deleted with the message.
    MessageContent.objects.filter(message=message).update(data={"text": "nothing about animals"})
    assert _listed(owner, {"m": message}, "body:zebra") == ""
    assert _listed(owner, {"m": message}, "body:animals") == "m"
    assert owner.client.delete(f"/v1/messages/{message.id}").status_code == 204
    assert _listed(owner, {}, "body:animals") == ""


def test_body_index_rows_go_with_their_content(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    MessageContent.objects.create(message=message, version=CONTENT_VERSION, data={"text": "alpha beta"})
    assert Message.objects.search("body:alpha").get() == message
    message.delete()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT count(*) FROM mail_messagecontent_fts")
        else:
            cursor.execute("SELECT count(*) FROM mail_messagecontent")
        assert cursor.fetchone() == (0,)


def test_the_sqlite_body_index_triggers_survive_every_migration(db: Any) -> None:
    # A later migration that remakes mail_messagecontent on SQLite drops its triggers.
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 body index")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'mail_messagecontent'")
        names = {row[0] for row in cursor.fetchall()}
    assert names == {f"mail_messagecontent_fts_{op}" for op in ("insert", "update", "delete")}


def test_the_body_index_takes_a_huge_hostile_text(owner: Any) -> None:
    # A tsvector over 1 MiB is an error on PostgreSQL: the index reads the first 200,000
    # characters, so storing the content of such a mail never fails.
    message = MessageFactory(agent=owner.agent)
    words = " ".join(f"w{i:x}\u4e00{i}" for i in range(120_000)) + " needle"
    MessageContent.objects.create(message=message, version=CONTENT_VERSION, data={"text": words})
    assert list(Message.objects.search("body:w0\u4e000")) == [message]
    assert list(Message.objects.search("body:needle")) == []


@pytest.mark.parametrize("q", ["from:bob", "subject:bob", "from:bob subject:invoice"])
def test_from_and_subject_each_read_the_trigram_index_once_on_postgres(owner: Any, q: str) -> None:
    # One pattern an operator: a second scan of the index, or a second pattern for the
    # planner to match against search_upper's histogram, is time every search pays.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plans")
    MessageFactory.create_batch(200, agent=owner.agent)
    sql, params = Message.objects.search(q).order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_message")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert plan.count("Bitmap Index Scan on mail_message_search_trgm") == 1, plan
    assert sql.split(" WHERE ", 1)[1].count("search_upper") == len(q.split()), sql


@pytest.mark.parametrize(
    "q, index",
    [
        ("to:bob", "mail_message_to_trgm"),
        ("cc:bob", "mail_message_cc_trgm"),
        ("from:bob", "mail_message_search_trgm"),  # Sender and From name are parts of search_upper
        ("subject:bob", "mail_message_search_trgm"),
        ("filename:bob", "mail_attachment_filename_trgm"),
        ("body:bob", "mail_content_body_search"),
        ("larger:10m", "mail_message_agent_size"),
        ("label:bob", "mail_label_"),
    ],
)
def test_each_operator_is_served_by_an_index_on_postgres(owner: Any, q: str, index: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plans")
    for i, message in enumerate(MessageFactory.create_batch(200, agent=owner.agent)):
        MessageContent.objects.create(message=message, version=CONTENT_VERSION, data={"text": f"word{i} common"})
    # Unscoped and unordered: the agent and the listing order are served by other indexes;
    # this asks what serves the operator.
    sql, params = Message.objects.search(q).order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE mail_message, mail_messagecontent")
        # A small table is cheaper to scan or to walk by its primary key: leave the planner
        # only the bitmap scans, which name the index that finds the rows.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert index in plan, plan
