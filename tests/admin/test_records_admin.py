"""Internal records (events, webhook deliveries and their attempts, send requests,
attachments, inbound deliveries, challenges) are read-only in the console, even for a
superuser: a hand-made event would be pushed to every webhook of the agent. The actions
that exist on purpose (retry a delivery) still work."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from mail.models import ArchiveJob, Attachment, InboundDelivery, Message
from tests.mime import build_mail
from webhooks.models import Delivery, Endpoint, Event
from webhooks.services import endpoint_create, event_record

RECORDS = [
    "webhooks/event",
    "webhooks/delivery",
    "webhooks/deliveryattempt",
    "mail/sendrequest",
    "mail/attachment",
    "mail/inbounddelivery",
    "mail/attachmenttext",
    "directory/challenge",
]


@pytest.mark.parametrize("model", RECORDS)
def test_a_superuser_gets_403_on_the_add_page_of_a_record(superuser_client: Client, model: str) -> None:
    assert superuser_client.get(f"/admin/{model}/add/").status_code == 403


@pytest.mark.parametrize("model", RECORDS)
def test_the_list_of_a_record_offers_no_add_link(superuser_client: Client, model: str) -> None:
    response = superuser_client.get(f"/admin/{model}/")

    assert response.status_code == 200
    assert f"/admin/{model}/add/" not in response.content.decode()
    assert f'href="/admin/{model}/add/"' not in superuser_client.get("/admin/").content.decode()


def test_an_event_cannot_be_created_through_the_admin(superuser_client: Client, owner: Any, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/hook")

    response = superuser_client.post(
        "/admin/webhooks/event/add/",
        {"agent": owner.agent.pk, "type": "message.received", "payload": '{"forged": true}'},
    )

    assert response.status_code == 403
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_a_recorded_event_cannot_be_edited_or_deleted(superuser_client: Client, owner: Any) -> None:
    event = event_record(agent=owner.agent, type="message.received", payload={"real": True})
    url = f"/admin/webhooks/event/{event.pk}"

    edited = superuser_client.post(
        f"{url}/change/", {"agent": owner.agent.pk, "type": "sender.blocked", "payload": "{}"}
    )
    deleted = superuser_client.post(f"{url}/delete/", {"post": "yes"})

    assert (edited.status_code, deleted.status_code) == (403, 403)
    event.refresh_from_db()
    assert (event.type, event.payload) == ("message.received", {"real": True})
    assert superuser_client.get(f"{url}/change/").status_code == 200  # still viewable


def test_mail_records_cannot_be_changed_or_bulk_deleted(superuser_client: Client, owner: Any, deliver: Any) -> None:
    deliver(build_mail(to=owner.address, attachments=[("a.txt", "text/plain", b"hello")]), to=owner.address)
    delivery = InboundDelivery.objects.get()
    attachment = Attachment.objects.get()

    changed = superuser_client.post(f"/admin/mail/inbounddelivery/{delivery.pk}/change/", {"status": "failed"})
    bulk = superuser_client.post(
        "/admin/mail/attachment/", {"action": "delete_selected", "_selected_action": [attachment.pk], "post": "yes"}
    )

    assert changed.status_code == 403
    assert bulk.status_code in (200, 302)
    assert Attachment.objects.filter(pk=attachment.pk).exists()
    assert InboundDelivery.objects.get().status == delivery.status
    assert Message.objects.count() == 1


def test_an_archive_job_can_be_started_but_not_deleted(superuser_client: Client, owner: Any) -> None:
    superuser_client.post(
        "/admin/mail/archivejob/add/", {"action": "archive", "agent": owner.agent.pk, "older_than_days": 90}
    )
    job = ArchiveJob.objects.get()

    assert superuser_client.post(f"/admin/mail/archivejob/{job.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ArchiveJob.objects.filter(pk=job.pk).exists()


def test_a_webhook_delivery_can_still_be_retried_but_not_edited(
    superuser_client: Client, owner: Any, settings: Any
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    endpoint_create(account=owner.agent.account, created_by=owner.agent, url="http://127.0.0.1:9/hook")
    event_record(agent=owner.agent, type="message.received", payload={})
    Delivery.objects.update(state=Delivery.State.FAILED, attempts=8, next_attempt_at=None)
    delivery = Delivery.objects.get()

    edited = superuser_client.post(f"/admin/webhooks/delivery/{delivery.pk}/change/", {"state": "succeeded"})
    retried = superuser_client.post(
        "/admin/webhooks/delivery/", {"action": "retry_now", "_selected_action": [delivery.pk]}
    )

    assert edited.status_code == 403
    assert retried.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING and delivery.attempts == 0
    assert Endpoint.objects.count() == 1
