"""Keyset pagination (``MessageQuerySet.after``) walks the listing order exactly, ties on
received_at included; bench/api.py measures that it is a seek, this proves it is right."""

from __future__ import annotations

import datetime as dt

from mail.models import Message
from tests.conftest import Persona
from tests.factories import MessageFactory


def test_it_pages_through_ties_without_skipping_or_repeating(owner: Persona) -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    # Three messages share a timestamp: the id breaks the tie.
    for minutes in (0, 1, 1, 1, 2, 3):
        MessageFactory(agent=owner.agent, received_at=base + dt.timedelta(minutes=minutes))
    listing = Message.objects.for_agent(owner.agent).in_inbox().not_archived().in_listing_order()
    expected = list(listing.values_list("id", flat=True))

    seen: list[str] = []
    page = list(listing[:2])
    while page:
        seen.extend(m.id for m in page)
        last = page[-1]
        page = list(listing.after(last.received_at, last.id)[:2])

    assert seen == expected
    assert len(seen) == 6
