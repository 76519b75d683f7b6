"""Every listing of inbox items (inbox, search, sent, thread) reads a page with its labels
and attachments in one query, and loads only what the item shows (MessageQuerySet.as_items):
a column message_item reads but the listing does not load would cost a query per message."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from mail.items import ITEM_COLUMNS
from mail.models import Attachment, Message, MessageLabel
from mail.serializers import message_item
from tests.factories import MessageFactory
from tests.mail.inbox_helpers import receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox(owner: Any, deliver: Any) -> str:
    """Five received mails with a label and an attachment each, and three sent replies in
    the first one's thread, also labelled, with four uploads each; returns the thread id."""
    received = [
        receive(deliver, owner, subject=f"Invoice {i}", attachments=[("a.txt", "text/plain", b"hi")]) for i in range(5)
    ]
    thread_id = received[0].thread_id
    sent = [
        MessageFactory(
            agent=owner.agent, direction=Message.Direction.OUTBOUND, status=Message.Status.SENT, thread_id=thread_id
        )
        for _ in range(3)
    ]
    for message in [*received, *sent]:
        MessageLabel.objects.create(message=message, name="x")
    # Uploads are listed in upload order: ids that sort the other way, and times that
    # differ in the fraction only (.45 s against .5 s) or by a whole second exactly.
    base = timezone.now().replace(microsecond=0)
    for n, message in enumerate(sent):
        for att_id, offset in ((f"att_z{n}", 0.0), (f"att_y{n}", 0.45), (f"att_x{n}", 0.5), (f"att_w{n}", 1.0)):
            Attachment.objects.create(
                id=att_id, agent=owner.agent, message=message, kind=Attachment.Kind.UPLOAD,
                state=Attachment.State.CLAIMED, filename=f"{att_id}.txt",
            )  # fmt: skip
            Attachment.objects.filter(pk=att_id).update(created_at=base + dt.timedelta(seconds=offset))
    return thread_id


@pytest.mark.parametrize(
    ("listing", "count", "queries"),
    [
        # the token, then the page with its labels and attachments
        ("/v1/inbox", 5, 2),
        # a search's page is one query too
        ("/v1/inbox?q=invoice", 5, 2),
        ("/v1/sent", 3, 2),
        ("/v1/threads/{thread}", 4, 2),
    ],
)
def test_a_listing_reads_its_page_in_a_fixed_number_of_queries(
    owner: Any, mailbox: str, listing: str, count: int, queries: int, django_assert_num_queries: Any
) -> None:
    url = listing.format(thread=mailbox)
    owner.client.get(url)  # the token's once-a-minute last_used_at touch
    with django_assert_num_queries(queries):
        response = owner.client.get(url)
    assert response.status_code == 200, response.content
    items = response.json()["items"]
    assert len(items) == count
    assert all(item["Labels"] == ["x"] for item in items)
    for item in items:
        names = [att["Filename"] for att in item["Attachments"]]
        if item["Direction"] == "inbound":
            assert names == ["a.txt"]
        else:
            assert [name[4] for name in names] == ["z", "y", "x", "w"]


def test_an_item_built_from_a_listing_needs_no_further_query(
    owner: Any, mailbox: str, django_assert_num_queries: Any
) -> None:
    rows = list(Message.objects.for_agent(owner.agent).as_items().order_by("received_at"))
    assert len(rows) == 8
    with django_assert_num_queries(0):
        items = [message_item(m) for m in rows]
    # Read through the related managers instead, the items are the same.
    plain = [message_item(m) for m in Message.objects.for_agent(owner.agent).order_by("received_at")]
    assert items == plain


def test_a_listing_loads_only_the_columns_of_the_item(owner: Any, mailbox: str) -> None:
    message = Message.objects.for_agent(owner.agent).as_items().first()
    assert message is not None
    loaded = set(message.__dict__) & {field.attname for field in Message._meta.concrete_fields}
    assert loaded == {column.replace("agent__agent_id", "agent_id") for column in ITEM_COLUMNS}
    assert set(message.agent.__dict__) >= {"id", "agent_id"} and "created_at" not in message.agent.__dict__
