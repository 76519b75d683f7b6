"""/v1/webhooks: registration, scope, rotation, replay and the delivery log."""

from __future__ import annotations

from typing import Any

import pytest

from tests.webhooks.conftest import Receiver
from webhooks.models import Delivery, Endpoint, Event
from webhooks.services import event_record


def test_an_agent_registers_a_webhook_and_sees_the_secret_once(owner: Any, receiver: Receiver) -> None:
    response = owner.client.post(
        "/v1/webhooks", {"url": receiver.url(), "event_types": ["message.received"]}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("whk_") and body["secret"].startswith("whsec_")
    assert body["agents"] == ["owner"] and body["event_types"] == ["message.received"] and body["enabled"]
    assert "secret" not in owner.client.get(f"/v1/webhooks/{body['id']}").json()
    assert [e["id"] for e in owner.client.get("/v1/webhooks").json()["items"]] == [body["id"]]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "ftp://x.example/",
    ],
)
def test_it_refuses_an_unsafe_url_with_400(owner: Any, url: str) -> None:
    response = owner.client.post("/v1/webhooks", {"url": url}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsafe_url"
    assert not Endpoint.objects.exists()


def test_it_refuses_an_unknown_event_type(owner: Any, receiver: Receiver) -> None:
    response = owner.client.post(
        "/v1/webhooks", {"url": receiver.url(), "event_types": ["message.eaten"]}, format="json"
    )

    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_event_type"


def test_an_agent_cannot_register_for_another_agent(owner: Any, teammate: Any, receiver: Receiver) -> None:
    response = owner.client.post("/v1/webhooks", {"url": receiver.url(), "agents": ["teammate"]}, format="json")

    # The token's kind forbids it, whatever the body: 403, as for a global sender rule.
    assert response.status_code == 403 and response.json()["error"]["code"] == "agents_not_allowed"


def test_another_agents_webhook_is_a_404(owner: Any, teammate: Any, stranger: Any, receiver: Receiver) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()

    for other in (teammate, stranger):
        assert other.client.get(f"/v1/webhooks/{hook['id']}").status_code == 404
        assert other.client.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
        assert other.client.get("/v1/webhooks").json()["items"] == []
    assert owner.client.get("/v1/webhooks/whk_nope").json()["error"]["code"] == "webhook_not_found"


def test_an_operator_registers_for_chosen_agents_or_all(
    operator: Any, owner: Any, teammate: Any, stranger: Any, receiver: Receiver
) -> None:
    chosen = operator.post("/v1/webhooks", {"url": receiver.url(), "agents": ["owner", "teammate"]}, format="json")
    everyone = operator.post("/v1/webhooks", {"url": receiver.url()}, format="json")
    foreign = operator.post("/v1/webhooks", {"url": receiver.url(), "agents": ["stranger"]}, format="json")

    assert chosen.status_code == 201 and chosen.json()["agents"] == ["owner", "teammate"]
    assert everyone.status_code == 201 and everyone.json()["all_agents"] is True
    assert foreign.status_code == 400 and foreign.json()["error"]["code"] == "unknown_agent"
    assert len(operator.get("/v1/webhooks").json()["items"]) == 2


def test_patch_updates_and_reenabling_clears_the_failure(owner: Any, receiver: Receiver) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()
    Endpoint.objects.filter(pk=hook["id"]).update(enabled=False, disabled_reason="the receiver answered 410 Gone")

    response = owner.client.patch(
        f"/v1/webhooks/{hook['id']}", {"enabled": True, "event_types": ["message.sent"]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["enabled"] and response.json()["disabled_reason"] == ""
    assert response.json()["event_types"] == ["message.sent"]
    bad = owner.client.patch(f"/v1/webhooks/{hook['id']}", {"url": "http://10.1.1.1/"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unsafe_url"


def test_delete_removes_the_webhook(owner: Any, receiver: Receiver) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()

    assert owner.client.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert owner.client.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_rotate_secret_returns_a_new_secret_and_keeps_the_old_one_for_a_while(owner: Any, receiver: Receiver) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()

    rotated = owner.client.post(f"/v1/webhooks/{hook['id']}/rotate-secret").json()

    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    assert Endpoint.objects.get().previous_secret == hook["secret"]


def test_replay_resends_an_event_with_its_original_id(
    owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        event = event_record(agent=owner.agent, type="message.received", payload={"MessageID": "msg_1"})

    response = owner.client.post(f"/v1/webhooks/{hook['id']}/replay", {"event_id": event.id}, format="json")
    from webhooks.tasks import dispatch_due_deliveries

    dispatch_due_deliveries()

    assert response.status_code == 202 and response.json() == {"replayed": 1}
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event.id, event.id]


def test_replay_by_time_range_and_bad_ranges(owner: Any, teammate: Any, receiver: Receiver) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()
    for _ in range(3):
        event_record(agent=owner.agent, type="message.received", payload={})
    event_record(agent=teammate.agent, type="message.received", payload={})
    teammate_event = Event.objects.get(agent=teammate.agent)

    ranged = owner.client.post(f"/v1/webhooks/{hook['id']}/replay", {"since": "2000-01-01T00:00:00Z"}, format="json")
    foreign = owner.client.post(f"/v1/webhooks/{hook['id']}/replay", {"event_id": teammate_event.id}, format="json")
    neither = owner.client.post(f"/v1/webhooks/{hook['id']}/replay", {}, format="json")

    assert ranged.json() == {"replayed": 3}
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "event_not_found"
    assert neither.status_code == 400 and neither.json()["error"]["code"] == "replay_range_required"


def test_deliveries_lists_the_attempts(owner: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    hook = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        event = event_record(agent=owner.agent, type="message.received", payload={})

    items = owner.client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]

    assert [(d["event_id"], d["state"], d["attempts"], d["last_status"]) for d in items] == [
        (event.id, "succeeded", 1, 200)
    ]
    assert owner.client.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=0").status_code == 400
    assert Delivery.objects.count() == 1


def test_anonymous_is_401(anonymous: Any) -> None:
    assert anonymous.get("/v1/webhooks").status_code == 401


@pytest.mark.parametrize("host", ["a" * 64 + ".example.com", "a..example.com"])
def test_it_refuses_a_host_name_that_cannot_be_one_with_400(owner: Any, host: str) -> None:
    response = owner.client.post("/v1/webhooks", {"url": f"https://{host}/hook"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsafe_url"
    assert not Endpoint.objects.exists()


@pytest.mark.parametrize("body", [{"enabled": "false"}, {"enabled": 0}, {"description": 5}, {"secret": "x"}])
def test_an_update_takes_json_types_and_known_fields_only(owner: Any, receiver: Receiver, body: dict[str, Any]) -> None:
    created = owner.client.post("/v1/webhooks", {"url": receiver.url()}, format="json").json()

    response = owner.client.patch(f"/v1/webhooks/{created['id']}", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"validation_error", "unknown_field"}
    assert Endpoint.objects.get(pk=created["id"]).enabled
