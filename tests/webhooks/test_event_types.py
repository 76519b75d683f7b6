"""webhooks.models.Event.Type is the one list of event types: every type the service records
can be subscribed to through POST /v1/webhooks and is described in docs/webhooks.md, and
nothing outside it can be recorded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mail.dispatch import message_track
from mail.models import Message
from tests.factories import MessageFactory
from webhooks.models import Delivery, Event
from webhooks.services import event_record

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


@pytest.mark.parametrize("event_type", Event.Type.values)
def test_every_recorded_type_can_be_subscribed_to(owner: Any, receiver: Any, event_type: str) -> None:
    response = owner.client.post("/v1/webhooks", {"url": receiver.url(), "event_types": [event_type]}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["event_types"] == [event_type]


def test_a_failed_send_is_delivered_to_an_endpoint_subscribed_to_message_failed(owner: Any, receiver: Any) -> None:
    endpoint = owner.client.post(
        "/v1/webhooks", {"url": receiver.url(), "event_types": ["message.failed"]}, format="json"
    ).json()
    MessageFactory(
        agent=owner.agent, direction=Message.Direction.OUTBOUND, status=Message.Status.SENT, provider_message_id="ses-1"
    )

    message_track(provider_message_id="ses-1", event_type="rejected", detail="Email address is on the suppression list")

    delivery = Delivery.objects.select_related("event").get(endpoint_id=endpoint["id"])
    assert delivery.event.type == "message.failed"
    assert delivery.event.payload["StatusDetail"] == "Email address is on the suppression list"


def test_a_type_outside_the_list_cannot_be_recorded(owner: Any) -> None:
    with pytest.raises(ValueError, match="message.teleported"):
        event_record(agent=owner.agent, type="message.teleported", payload={})

    assert not Event.objects.exists()


def test_every_type_is_described_in_the_webhooks_guide() -> None:
    documented = set(re.findall(r"^\| `([a-z]+\.[a-z_]+)` \|", DOCS.read_text(), flags=re.M))

    assert documented == set(Event.Type.values)
