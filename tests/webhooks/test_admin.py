"""Staff see disabled endpoints in the admin and can retry deliveries. A signing secret is
shown once, when the endpoint is made or its secret rotated, as the API does."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.messages import get_messages

from webhooks.models import Delivery, Endpoint
from webhooks.services import endpoint_create, endpoint_rotate_secret, event_record

SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{32}")


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


def _messages(response: Any) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def test_the_endpoint_pages_never_show_its_secrets(admin_client: Any, owner: Any, settings: Any) -> None:
    endpoint = endpoint_rotate_secret(endpoint=_endpoint(owner, settings))

    pages = [
        admin_client.get("/admin/webhooks/endpoint/").content.decode(),
        admin_client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode(),
        admin_client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/history/").content.decode(),
    ]

    assert endpoint.secret.startswith("whsec_") and endpoint.previous_secret.startswith("whsec_")
    for page in pages:
        assert endpoint.secret not in page and endpoint.previous_secret not in page
        assert endpoint.secret[6:] not in page


def test_creating_an_endpoint_shows_its_secret_once(admin_client: Any, owner: Any, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True

    response = admin_client.post(
        "/admin/webhooks/endpoint/add/",
        {
            "account": owner.agent.account.pk,
            "url": "http://127.0.0.1:9/new",
            "event_types": ["message.received"],
            "enabled": "on",
        },
        follow=True,
    )

    endpoint = Endpoint.objects.get(url="http://127.0.0.1:9/new")
    assert SECRET.fullmatch(endpoint.secret)
    assert endpoint.secret in _messages(response)
    assert endpoint.all_agents and endpoint.event_types == ["message.received"]
    assert endpoint.secret not in admin_client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/").content.decode()


def test_the_admin_refuses_an_endpoint_on_a_private_address(admin_client: Any, owner: Any) -> None:
    response = admin_client.post(
        "/admin/webhooks/endpoint/add/",
        {"account": owner.agent.account.pk, "url": "http://10.0.0.1/hook", "enabled": "on"},
    )

    assert response.status_code == 200 and "errornote" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_one_signing(
    admin_client: Any, owner: Any, settings: Any
) -> None:
    endpoint = _endpoint(owner, settings)
    old = endpoint.secret

    response = admin_client.post(
        "/admin/webhooks/endpoint/", {"action": "rotate_secret", "_selected_action": [endpoint.pk]}, follow=True
    )

    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    shown = _messages(response)
    assert endpoint.secret in shown and old not in shown
    assert endpoint.secret not in response.content.decode().split('class="messagelist"')[0]


def test_changing_an_endpoint_goes_through_the_service(admin_client: Any, owner: Any, settings: Any) -> None:
    endpoint = _endpoint(owner, settings)
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="the receiver answered 410 Gone")

    admin_client.post(
        f"/admin/webhooks/endpoint/{endpoint.pk}/change/",
        {"url": "http://127.0.0.1:9/moved", "description": "", "enabled": "on"},
    )

    endpoint.refresh_from_db()
    assert endpoint.url == "http://127.0.0.1:9/moved" and endpoint.enabled and endpoint.disabled_reason == ""
    assert SECRET.fullmatch(endpoint.secret)
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    admin_client.post(
        f"/admin/webhooks/endpoint/{endpoint.pk}/change/", {"url": "http://127.0.0.1:9/x", "enabled": "on"}
    )
    endpoint.refresh_from_db()
    assert endpoint.url == "http://127.0.0.1:9/moved"


def test_an_endpoint_cannot_name_another_accounts_agent(
    admin_client: Any, owner: Any, stranger: Any, settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True

    response = admin_client.post(
        "/admin/webhooks/endpoint/add/",
        {
            "account": owner.agent.account.pk,
            "url": "http://127.0.0.1:9/x",
            "agents": [stranger.agent.pk],
            "enabled": "on",
        },
    )

    assert response.status_code == 200 and "must belong to the endpoint" in response.content.decode()
    assert not Endpoint.objects.exists()
