"""GET /v1/inbox?q= and ?label= page by cursor to every match exactly once, with page
boundaries inside runs of equal ReceivedAt.

The search tests the generated column Message.search_upper (the searched columns
upper-cased and joined), so the tests below hold it to the per-column test
(``col__icontains`` on each column): same case folding, never a match across two
columns, kept up to date by UPDATE.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest
from django.db.models import Q
from django.utils import timezone

from mail.models import Message, MessageLabel
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import ids

pytestmark = pytest.mark.django_db

N = 60


def _subject(i: int) -> str:
    words = []
    if i % 2 == 0:
        words.append("Invoice")  # common: half the mailbox
    if i % 9 == 4:
        words.append("quarterly")  # mid
    if i in (7, 52):
        words.append("ZQ-100%_x")  # rare, with LIKE wildcards that must stay literal
    return " ".join(words + [f"n{i}"])


@pytest.fixture
def mailbox(owner: Any, teammate: Any) -> list[Message]:
    base = timezone.now() - dt.timedelta(days=1)
    made = []
    for i in range(N):
        # Three messages per second: cursors fall inside ties of ReceivedAt.
        at = base + dt.timedelta(seconds=i // 3)
        extra: dict[str, Any] = {}
        if i % 11 == 3:
            extra["archived"] = True
        if i % 13 == 5:
            extra["disposition"] = Message.Disposition.HELD
        if i % 10 == 6:
            extra = {"body_preview": "see the INVOICE attached"}  # matched by the preview only
        made.append(
            MessageFactory(
                agent=owner.agent,
                received_at=at,
                subject=_subject(i),
                body_preview=extra.pop("body_preview", "hello"),
                **extra,
            )
        )
    # Another mailbox's matches are never listed.
    MessageFactory(agent=teammate.agent, subject="Invoice ZQ-100%_x quarterly", received_at=base)
    return made


def _walk(persona: Any, query: str, limit: int) -> list[str]:
    seen: list[str] = []
    url = f"/v1/inbox?limit={limit}&{query}"
    for _ in range(N + 2):
        body = persona.client.get(url).json()
        seen += [item["MessageID"] for item in body["items"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return seen
        url = f"/v1/inbox?limit={limit}&{query}&cursor={body['next_cursor']}"
    raise AssertionError("the cursor walk did not end")


def _visible(messages: list[Message], include_archived: bool = False) -> list[Message]:
    rows = [m for m in messages if m.disposition == "inbox" and (include_archived or not m.archived)]
    return sorted(rows, key=lambda m: (m.received_at, m.id))


@pytest.mark.parametrize("term", ["invoice", "QUARTERLY", "zq-100%_x", "nothing-matches"])
@pytest.mark.parametrize("limit", [1, 3, 7])
def test_it_pages_a_search_to_every_match_exactly_once_in_listing_order(
    owner: Any, mailbox: list[Message], term: str, limit: int
) -> None:
    expected = [
        m.id
        for m in _visible(mailbox)
        if any(term.lower() in value.lower() for value in (m.subject, m.body_preview, m.sender, m.from_name))
    ]
    assert _walk(owner, f"q={term.replace('%', '%25')}", limit) == expected


def test_it_combines_search_with_label_and_read_filters(owner: Any, mailbox: list[Message]) -> None:
    for m in mailbox[::3]:
        MessageLabel.objects.create(message=m, name="todo")
    Message.objects.filter(pk__in=[m.pk for m in mailbox[::4]]).update(is_read=True)
    for m in mailbox:
        m.refresh_from_db()
    expected = [
        m.id
        for m in _visible(mailbox)
        if "invoice" in (m.subject + m.body_preview).lower() and mailbox.index(m) % 3 == 0 and not m.is_read
    ]
    assert _walk(owner, "q=invoice&label=todo&is_read=false", 2) == expected


@pytest.mark.parametrize("include_archived", [False, True])
def test_it_pages_a_label_to_every_labelled_message_exactly_once(
    owner: Any, mailbox: list[Message], include_archived: bool
) -> None:
    labelled = mailbox[1::2]
    for m in labelled:
        MessageLabel.objects.create(message=m, name="work")
    MessageLabel.objects.create(message=mailbox[0], name="Work")  # names are exact
    expected = [m.id for m in _visible(labelled, include_archived)]
    query = "label=work" + ("&include_archived=true" if include_archived else "")
    assert _walk(owner, query, 3) == expected


def test_it_follows_archive_and_restore_of_a_labelled_message(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent)
    response = owner.client.patch(f"/v1/messages/{message.id}/labels", {"add": ["keep"]}, format="json")
    assert response.status_code == 200
    assert ids(owner.client.get("/v1/inbox?label=keep")) == [message.id]
    assert (
        owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": True}, format="json").status_code == 200
    )
    assert ids(owner.client.get("/v1/inbox?label=keep")) == []
    assert ids(owner.client.get("/v1/inbox?label=keep&include_archived=true")) == [message.id]
    assert owner.client.get("/v1/inbox/unread-count?label=keep").json()["unread_count"] == 0
    assert (
        owner.client.patch(f"/v1/messages/{message.id}/archive", {"archived": False}, format="json").status_code == 200
    )
    assert ids(owner.client.get("/v1/inbox?label=keep")) == [message.id]
    assert owner.client.get("/v1/inbox/unread-count?label=keep").json()["unread_count"] == 1


def test_it_copies_the_message_keys_onto_labels_however_they_are_inserted(owner: Any) -> None:
    archived = MessageFactory(agent=owner.agent, archived=True)
    visible = MessageFactory(agent=owner.agent)
    MessageLabel.objects.create(message=archived, name="a")
    MessageLabel.objects.bulk_create([MessageLabel(message_id=visible.id, name="b")])
    rows = {label.name: label for label in MessageLabel.objects.all()}
    assert (rows["a"].agent_id, rows["a"].received_at, rows["a"].archived) == (
        owner.agent.pk,
        archived.received_at,
        True,
    )
    assert (rows["b"].agent_id, rows["b"].received_at, rows["b"].archived) == (
        owner.agent.pk,
        visible.received_at,
        False,
    )


# Terms for the comparison with the per-column test: a non-ASCII case fold, LIKE
# wildcards, and U+0001 (the separator of search_upper, for which the columns themselves
# are tested).
_TERMS = ["invoice", "QUARTERLY", "zq-100%_x", "nothing-matches", "n1", "Über", "caf\u00c9", "x\x01y", "hello"]


def _per_column(q: str) -> Q:
    return Q(subject__icontains=q) | Q(body_preview__icontains=q) | Q(sender__icontains=q) | Q(from_name__icontains=q)


def test_it_matches_what_the_per_column_test_matches(owner: Any, mailbox: list[Message]) -> None:
    MessageFactory(agent=owner.agent, subject="Über café", body_preview="x\x01y")
    MessageFactory(agent=owner.agent, subject="ÜBER CAFÉ", from_name="Ünal")
    inbox = Message.objects.for_agent(owner.agent).inbox_filtered()
    for term in _TERMS:
        expected = list(inbox.filter(_per_column(term)).in_listing_order().values_list("id", flat=True))
        assert list(inbox.search(term).in_listing_order().values_list("id", flat=True)) == expected, term
        assert _walk(owner, f"q={quote(term)}", 3) == expected, term


def test_it_never_matches_across_two_columns(owner: Any) -> None:
    both = MessageFactory(agent=owner.agent, subject="alpha foo", body_preview="bar beta", sender="s@x.test")
    assert ids(owner.client.get("/v1/inbox?q=foo")) == [both.id]
    assert ids(owner.client.get("/v1/inbox?q=bar%20beta")) == [both.id]
    for across in ("foobar", "%22foo%20bar%22", "foo%01bar", "betas@x", "foo%25bar"):
        assert ids(owner.client.get(f"/v1/inbox?q={across}")) == [], across
    # Two bare terms each match on their own (API.md, "Search grammar").
    assert ids(owner.client.get("/v1/inbox?q=foo%20bar")) == [both.id]


def test_it_finds_a_message_by_what_an_update_wrote(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent, subject="Before", body_preview="first words", from_name="Ann")
    Message.objects.filter(pk=message.pk).update(subject="After zebra", from_name="Zoë Field")
    assert ids(owner.client.get("/v1/inbox?q=zebra")) == [message.id]
    # Case folding beyond ASCII is the engine's (SQLite's LIKE folds ASCII only): as the
    # per-column test does.
    plain = Message.objects.for_agent(owner.agent).filter(_per_column("ZOË")).values_list("id", flat=True)
    assert ids(owner.client.get("/v1/inbox?q=ZOË")) == list(plain)
    assert ids(owner.client.get("/v1/inbox?q=before")) == []
    assert ids(owner.client.get("/v1/inbox?q=first%20words")) == [message.id]


@pytest.mark.parametrize("limit", [1, 4])
def test_it_pages_a_search_with_archived_mail_in_listing_order(owner: Any, mailbox: list[Message], limit: int) -> None:
    # Archived and visible messages interleave: the page keeps (ReceivedAt, id) order.
    expected = [
        m.id for m in _visible(mailbox, include_archived=True) if "invoice" in (m.subject + m.body_preview).lower()
    ]
    assert any(m.archived for m in mailbox if m.id in expected)
    assert _walk(owner, "q=invoice&include_archived=true", limit) == expected


def test_search_upper_is_a_model_field_on_every_database(owner: Any) -> None:
    message = MessageFactory(agent=owner.agent, subject="Re: hi", body_preview="b", sender="s@x.test", from_name="Ann")
    Message.objects.filter(pk=message.pk).update(from_name="Bob")
    assert Message.objects.values_list("search_upper", flat=True).get(pk=message.pk) == "RE: HI\x01B\x01S@X.TEST\x01BOB"
