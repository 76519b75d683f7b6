"""GET /v1/inbox: guide sections 2 (poll), 6 (search) and the listing rules of API.md."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from mail.models import Message, MessageLabel
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import error_code, ids, receive

pytestmark = pytest.mark.django_db


def test_it_lists_received_mail_oldest_first_with_the_item_shape(owner: Any, deliver: Any) -> None:
    first = receive(deliver, owner, subject="First")
    second = receive(deliver, owner, subject="Second")
    response = owner.client.get("/v1/inbox")
    body = response.json()
    assert set(body) == {"items", "next_cursor", "has_more"}
    assert ids(response) == [first.id, second.id]
    assert body["has_more"] is False and body["next_cursor"] is None
    item = body["items"][0]
    for field in (
        "MessageID",
        "AgentID",
        "Direction",
        "From",
        "Sender",
        "To",
        "Cc",
        "Subject",
        "BodyPreview",
        "ReceivedAt",
        "SenderVerified",
        "Labels",
        "IsRead",
        "Archived",
        "ThreadID",
        "InternetMessageID",
        "Attachments",
        "Size",
    ):
        assert field in item
    assert item["AgentID"] == "owner" and item["Subject"] == "First" and item["SenderVerified"] is False


def test_it_pages_with_the_cursor_without_skipping_or_repeating(owner: Any) -> None:
    when = timezone.now()
    # Ties on ReceivedAt: the id breaks them, so no message is lost at a page boundary.
    made = [MessageFactory(agent=owner.agent, received_at=when + dt.timedelta(seconds=i // 3)) for i in range(7)]
    seen: list[str] = []
    url = "/v1/inbox?limit=2"
    while True:
        body = owner.client.get(url).json()
        seen += [item["MessageID"] for item in body["items"]]
        if not body["has_more"]:
            break
        url = f"/v1/inbox?limit=2&cursor={body['next_cursor']}"
    assert seen == [m.id for m in sorted(made, key=lambda m: (m.received_at, m.id))]


def test_it_defaults_to_25_and_accepts_100(owner: Any) -> None:
    MessageFactory.create_batch(30, agent=owner.agent)
    assert len(ids(owner.client.get("/v1/inbox"))) == 25
    assert len(ids(owner.client.get("/v1/inbox?limit=100"))) == 30


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", ""])
def test_it_rejects_a_limit_outside_1_to_100(owner: Any, limit: str) -> None:
    response = owner.client.get(f"/v1/inbox?limit={limit}")
    assert response.status_code == 400
    assert error_code(response) == "validation_error"


def test_it_rejects_unknown_query_parameters(owner: Any) -> None:
    response = owner.client.get("/v1/inbox?unread=true")
    assert response.status_code == 400
    assert error_code(response) == "unknown_parameter"


@pytest.mark.parametrize("value", ["yes", "True", "on", "2", ""])
def test_it_rejects_booleans_other_than_true_false_1_0(owner: Any, value: str) -> None:
    for name in ("is_read", "include_archived", "verified_only"):
        response = owner.client.get(f"/v1/inbox?{name}={value}")
        assert response.status_code == 400, name
        assert error_code(response) == "validation_error"


def test_it_rejects_a_forged_cursor(owner: Any) -> None:
    response = owner.client.get("/v1/inbox?cursor=not-a-cursor")
    assert response.status_code == 400
    assert error_code(response) == "invalid_cursor"


def test_it_shows_only_inbound_inbox_mail(owner: Any) -> None:
    visible = MessageFactory(agent=owner.agent)
    MessageFactory(agent=owner.agent, direction=Message.Direction.OUTBOUND)
    for disposition in ("quarantined", "held", "blocked"):
        MessageFactory(agent=owner.agent, disposition=disposition)
    assert ids(owner.client.get("/v1/inbox")) == [visible.id]


def test_it_hides_archived_mail_unless_include_archived(owner: Any) -> None:
    kept = MessageFactory(agent=owner.agent)
    archived = MessageFactory(agent=owner.agent, archived=True)
    assert ids(owner.client.get("/v1/inbox")) == [kept.id]
    assert ids(owner.client.get("/v1/inbox?include_archived=false")) == [kept.id]
    assert ids(owner.client.get("/v1/inbox?include_archived=true")) == [kept.id, archived.id]
    assert ids(owner.client.get("/v1/inbox?include_archived=1")) == [kept.id, archived.id]


def test_it_filters_verified_only(owner: Any) -> None:
    MessageFactory(agent=owner.agent, sender_verified=False)
    verified = MessageFactory(agent=owner.agent, sender_verified=True)
    assert ids(owner.client.get("/v1/inbox?limit=25&verified_only=true")) == [verified.id]
    assert len(ids(owner.client.get("/v1/inbox?verified_only=0"))) == 2


def test_it_filters_by_read_state(owner: Any) -> None:
    unread = MessageFactory(agent=owner.agent)
    read = MessageFactory(agent=owner.agent, is_read=True)
    assert ids(owner.client.get("/v1/inbox?is_read=false")) == [unread.id]
    assert ids(owner.client.get("/v1/inbox?is_read=true")) == [read.id]


def test_it_filters_by_label_exactly(owner: Any) -> None:
    tagged = MessageFactory(agent=owner.agent)
    other = MessageFactory(agent=owner.agent)
    MessageLabel.objects.create(message=tagged, name="needs-review")
    MessageLabel.objects.create(message=other, name="Needs-Review")
    assert ids(owner.client.get("/v1/inbox?label=needs-review")) == [tagged.id]


def test_it_combines_filters_with_and(owner: Any) -> None:
    match = MessageFactory(agent=owner.agent, subject="Invoice 7", sender_verified=True)
    MessageFactory(agent=owner.agent, subject="Invoice 8", sender_verified=False)
    MessageFactory(agent=owner.agent, subject="Invoice 9", sender_verified=True, is_read=True)
    MessageFactory(agent=owner.agent, subject="Hello", sender_verified=True)
    assert ids(owner.client.get("/v1/inbox?q=invoice&verified_only=true&is_read=false")) == [match.id]


def test_it_searches_subject_preview_sender_and_from_name_case_insensitively(owner: Any, deliver: Any) -> None:
    by_subject = receive(deliver, owner, subject="Your INVOICE is ready")
    by_body = receive(deliver, owner, subject="Hi", body="please find the invoice attached")
    by_sender = receive(deliver, owner, sender="billing@invoices.example.com", subject="x")
    by_name = receive(deliver, owner, sender="Invoice Robot <robot@example.org>", subject="y")
    receive(deliver, owner, subject="Lunch?")
    assert set(ids(owner.client.get("/v1/inbox?q=invoice"))) == {by_subject.id, by_body.id, by_sender.id, by_name.id}


def test_it_finds_mail_whose_raw_utf8_headers_name_the_query(owner: Any, deliver: Any) -> None:
    # RFC 6532: UTF-8 straight in the header block, no encoded words.
    raw = (Path(__file__).parent / "testdata" / "raw-utf8-headers.eml").read_bytes()
    deliver(raw, to=owner.address)
    receive(deliver, owner, subject="Jose without the accent")

    response = owner.client.get("/v1/inbox", {"q": "José"})

    assert [item["Subject"] for item in response.json()["items"]] == ["Café José naïve reçu"]
    assert [item["Subject"] for item in owner.client.get("/v1/inbox", {"q": "jdöe@mächine"}).json()["items"]] == [
        "Café José naïve reçu"
    ]


@pytest.mark.parametrize("literal", ["%", "_", "\\"])
def test_it_treats_percent_underscore_and_backslash_literally(owner: Any, literal: str) -> None:
    hit = MessageFactory(agent=owner.agent, subject=f"a{literal}b", body_preview="", sender="x@example.com")
    MessageFactory(agent=owner.agent, subject="axb", body_preview="", sender="y@example.com")
    response = owner.client.get("/v1/inbox", {"q": literal})
    assert ids(response) == [hit.id]


@pytest.mark.parametrize("q", ["", " ", "%20%09"])
def test_it_rejects_an_empty_or_blank_query_with_empty_query(owner: Any, q: str) -> None:
    response = owner.client.get(f"/v1/inbox?q={q}")
    assert response.status_code == 400
    assert error_code(response) == "empty_query"


def test_it_rejects_a_query_over_256_characters(owner: Any) -> None:
    assert owner.client.get("/v1/inbox", {"q": "a" * 256}).status_code == 200
    response = owner.client.get("/v1/inbox", {"q": "a" * 257})
    assert response.status_code == 400
    assert error_code(response) == "query_too_long"


def test_it_never_shows_another_agents_mail(owner: Any, teammate: Any, stranger: Any) -> None:
    mine = MessageFactory(agent=owner.agent)
    MessageFactory(agent=teammate.agent)
    MessageFactory(agent=stranger.agent)
    assert ids(owner.client.get("/v1/inbox")) == [mine.id]


def test_it_lists_a_page_in_a_constant_number_of_queries(
    owner: Any, deliver: Any, django_assert_max_num_queries: Any
) -> None:
    for i in range(5):
        message = receive(deliver, owner, subject=f"m{i}", attachments=[("a.txt", "text/plain", b"hi")])
        MessageLabel.objects.create(message=message, name="x")
    # auth token + the page with its labels and attachments (+ the once-a-minute last_used_at touch)
    with django_assert_max_num_queries(3):
        response = owner.client.get("/v1/inbox")
    assert len(ids(response)) == 5
    assert all(item["Labels"] == ["x"] and len(item["Attachments"]) == 1 for item in response.json()["items"])


def test_it_needs_a_token(anonymous: Any) -> None:
    response = anonymous.get("/v1/inbox")
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_cursor_stays_valid_after_its_message_is_deleted(owner: Any) -> None:
    made = MessageFactory.create_batch(4, agent=owner.agent)
    first = owner.client.get("/v1/inbox?limit=2").json()
    owner.client.delete(f"/v1/messages/{first['items'][-1]['MessageID']}")
    rest = owner.client.get(f"/v1/inbox?limit=2&cursor={first['next_cursor']}")
    assert ids(rest) == [m.id for m in made[2:]]
