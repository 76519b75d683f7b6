"""Staff see disabled endpoints in the admin and can retry deliveries."""

from __future__ import annotations

from typing import Any

from webhooks.models import Delivery, Endpoint
from webhooks.services import endpoint_create, event_record


def _endpoint(owner: Any, settings: Any) -> Endpoint:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    return endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/hook")


def test_a_disabled_endpoint_is_highlighted(admin_client: Any, owner: Any, settings: Any) -> None:
    endpoint = _endpoint(owner, settings)
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="the receiver answered 410 Gone")

    page = admin_client.get("/admin/webhooks/endpoint/").content.decode()

    assert "DISABLED" in page and "410 Gone" in page


def test_retry_now_makes_a_failed_delivery_due_again(admin_client: Any, owner: Any, settings: Any) -> None:
    _endpoint(owner, settings)
    event_record(agent=owner.agent, type="message.received", payload={})
    Delivery.objects.update(state=Delivery.State.FAILED, attempts=8, next_attempt_at=None)
    delivery = Delivery.objects.get()

    response = admin_client.post(
        "/admin/webhooks/delivery/", {"action": "retry_now", "_selected_action": [delivery.pk]}
    )

    delivery.refresh_from_db()
    assert response.status_code == 302
    assert delivery.state == Delivery.State.PENDING and delivery.attempts == 0 and delivery.next_attempt_at is not None


def test_the_delivery_page_shows_the_attempt_log(admin_client: Any, owner: Any, settings: Any) -> None:
    _endpoint(owner, settings)
    event_record(agent=owner.agent, type="message.received", payload={})
    delivery = Delivery.objects.get()
    delivery.attempt_log.create(number=1, status_code=500, latency_ms=12, response_excerpt="boom")

    page = admin_client.get(f"/admin/webhooks/delivery/{delivery.pk}/change/").content.decode()

    assert "boom" in page
