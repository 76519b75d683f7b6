"""Property: paging through GET /v1/inbox while mail arrives and messages are labelled,
read or archived never skips or repeats a message (API.md, Listing rules)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from directory.models import Account
from directory.services import agent_create
from mail.models import Message
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

_counter = itertools.count()

# Between two page fetches, one of these happens to a random message (or a new one arrives).
actions = st.lists(
    st.tuples(
        st.sampled_from(["arrive", "label", "read", "archive", "unarchive"]),
        st.integers(min_value=0, max_value=1000),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initial=st.integers(min_value=0, max_value=12),
    page_size=st.integers(min_value=1, max_value=5),
    ties=st.integers(min_value=1, max_value=4),
    include_archived=st.booleans(),
    steps=actions,
)
def test_paging_never_skips_or_repeats(
    db: Any, initial: int, page_size: int, ties: int, include_archived: bool, steps: list[tuple[str, int]]
) -> None:
    agent, issued = agent_create(agent_id=f"pager{next(_counter)}", account=Account.objects.get_or_create(name="p")[0])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    base = timezone.now() - dt.timedelta(hours=1)
    # Several messages share each ReceivedAt so that page boundaries fall inside ties.
    start = [MessageFactory(agent=agent, received_at=base + dt.timedelta(seconds=i // ties)) for i in range(initial)]
    ever_archived: set[str] = set()
    seen: list[str] = []
    query = f"limit={page_size}" + ("&include_archived=true" if include_archived else "")
    url = f"/v1/inbox?{query}"
    pending = list(steps)
    while True:
        body = client.get(url).json()
        seen += [item["MessageID"] for item in body["items"]]
        if pending:
            action, pick = pending.pop(0)
            messages = list(Message.objects.filter(agent=agent).order_by("received_at", "id"))
            if action == "arrive" or not messages:
                MessageFactory(agent=agent)  # received now: after everything listed so far
            else:
                target = messages[pick % len(messages)]
                if action == "label":
                    target.labels.get_or_create(name=f"l{pick}")
                elif action == "read":
                    Message.objects.filter(pk=target.pk).update(is_read=True)
                elif action == "archive":
                    Message.objects.filter(pk=target.pk).update(archived=True)
                    ever_archived.add(target.id)
                else:
                    Message.objects.filter(pk=target.pk).update(archived=False)
        if not body["has_more"]:
            break
        url = f"/v1/inbox?{query}&cursor={body['next_cursor']}"
    assert len(seen) == len(set(seen)), "a message was listed twice"
    must_see = {m.id for m in start} if include_archived else {m.id for m in start} - ever_archived
    assert must_see <= set(seen), "a message that was there all along was skipped"
    Message.objects.filter(agent=agent).delete()
