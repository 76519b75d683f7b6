"""Approval and cancel racing each other on a real PostgreSQL: for every message one of
them decides its fate. A cancel that came first makes the approval a 409; an approval that
came first either sends the message (the cancel is a 409 already_sent) or leaves it queued
for a moment, and a cancel then still stops it (200, never handed to the transport). What
never happens: a message both canceled and sent, or sent without an approval."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings
from django.core import mail as outbox
from django.db import connection
from rest_framework.test import APIClient

from directory.models import ApiToken, OutboundPolicy
from directory.services import token_create
from mail.models import ApprovalDecision, Message
from mail.sending import Outgoing, message_send
from webhooks.models import Event

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]

RACES = 25


def test_approve_and_cancel_racing_have_exactly_one_winner(transactional_db: Any, owner: Any, settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboundPolicy.objects.create(agent=owner.agent, approval="always")
    held = [
        message_send(agent=owner.agent, outgoing=Outgoing(to=["bob@example.com"], subject=f"n{i}", body="b")).id
        for i in range(RACES)
    ]
    operator_token = token_create(kind=ApiToken.Kind.OPERATOR, account=owner.agent.account).plaintext
    barrier = threading.Barrier(2 * RACES)

    def attempt(job: tuple[str, str]) -> tuple[str, str, int]:
        verb, message_id = job
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {operator_token if verb == 'approve' else owner.token}")
        url = f"/v1/approvals/{message_id}/approve" if verb == "approve" else f"/v1/messages/{message_id}/cancel"
        try:
            barrier.wait()
            return verb, message_id, client.post(url).status_code
        finally:
            connection.close()

    jobs = [(verb, message_id) for message_id in held for verb in ("approve", "cancel")]
    with ThreadPoolExecutor(max_workers=2 * RACES) as pool:
        results = list(pool.map(attempt, jobs))

    sent_subjects = sorted(m.subject for m in outbox.outbox)
    outcomes = {"canceled first": 0, "approved and sent": 0, "approved then canceled": 0}
    for message_id in held:
        codes = {verb: code for verb, mid, code in results if mid == message_id}
        message = Message.objects.get(pk=message_id)
        decided = ApprovalDecision.objects.filter(message=message).exists()
        if codes == {"approve": 409, "cancel": 200}:
            outcomes["canceled first"] += 1
            assert message.status == Message.Status.CANCELED and not decided
        elif codes == {"approve": 200, "cancel": 409}:
            outcomes["approved and sent"] += 1
            assert message.status == Message.Status.SENT and decided
        else:
            assert codes == {"approve": 200, "cancel": 200}, codes
            outcomes["approved then canceled"] += 1
            assert message.status == Message.Status.CANCELED and decided
    expected_sent = sorted(Message.objects.filter(status=Message.Status.SENT).values_list("subject", flat=True))
    assert sent_subjects == expected_sent
    assert len(sent_subjects) == len(set(sent_subjects))
    assert Event.objects.filter(type="message.sent").count() == outcomes["approved and sent"]
    print(f"of {RACES} races: {outcomes}")
