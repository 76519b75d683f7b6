from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import time_machine
from django.core.management import call_command

from webhooks.models import Event
from webhooks.services import event_record


def test_it_deletes_only_events_older_than_the_retention(owner: Any, settings: Any) -> None:
    settings.WEBHOOKS_EVENT_RETENTION_DAYS = 30
    now = datetime(2026, 6, 1, tzinfo=UTC)
    with time_machine.travel(now - timedelta(days=31), tick=False):
        event_record(agent=owner.agent, type="message.received", payload={})
    with time_machine.travel(now - timedelta(days=29), tick=False):
        kept = event_record(agent=owner.agent, type="message.received", payload={})

    out = StringIO()
    with time_machine.travel(now, tick=False):
        call_command("prune_events", stdout=out)

    assert list(Event.objects.values_list("id", flat=True)) == [kept.id]
    assert "Deleted 1 events." in out.getvalue()
