"""A duplicate by X-AgentMail-Idempotency-Key is never dropped without a trace: staff find
it among the messages (filtered by disposition) and in the moderation queue, with the
reason naming the message that holds the key."""

from __future__ import annotations

from typing import Any

from django.test import Client

from mail.models import Message
from tests.mime import build_mail

ALIGNED = {"spf": "pass", "spf_domain": "example.com", "dkim": "none", "single_from": True}


def test_staff_see_a_duplicate_with_the_message_holding_its_key(
    superuser_client: Client, owner: Any, deliver: Any
) -> None:
    headers = {"X-AgentMail-Idempotency-Key": "order-7"}
    deliver(
        build_mail(to=owner.address, subject="First try", headers=headers), to=owner.address, authentication=ALIGNED
    )
    deliver(
        build_mail(to=owner.address, subject="Second try", headers=headers), to=owner.address, authentication=ALIGNED
    )
    first = Message.objects.get(subject="First try")

    listed = superuser_client.get("/admin/mail/message/", {"disposition__exact": "duplicate"}).content.decode()
    queue = superuser_client.get("/admin/mail/moderationitem/").content.decode()

    assert "Second try" in listed and "First try" not in listed
    assert "Second try" in queue and first.id in queue
