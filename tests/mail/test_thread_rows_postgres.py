"""PostgreSQL-only proof: concurrent changes to two messages of one thread both reach its
Thread row (each refresh sums the thread under the thread's advisory lock, so the later one
sees the earlier one's commit instead of writing a sum without it)."""

from __future__ import annotations

import pytest
from django.conf import settings

from mail import services
from mail.models import Message, Thread
from mail.threads import threads_refresh
from tests.concurrency import run_concurrently
from tests.factories import MessageFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not settings.IS_POSTGRES, reason="needs PostgreSQL (DATABASE_URL)"),
]


@pytest.mark.django_db(transaction=True)
def test_concurrent_label_patches_on_one_thread_both_reach_its_row() -> None:
    for attempt in range(5):
        thread_id = f"thr_race{attempt}"
        first = MessageFactory(thread_id=thread_id, storage_key="")
        messages = [first, MessageFactory(agent=first.agent, thread_id=thread_id, storage_key="")]
        threads_refresh(keys=[(messages[0].agent_id, thread_id)])

        run_concurrently(
            [
                lambda m=message, n=n: services.message_labels_patch(
                    message=Message.objects.get(pk=m.pk), add=[f"l{n}"]
                )
                for n, message in enumerate(messages)
            ]
        )

        assert Thread.objects.get(thread_id=thread_id).labels == ["l0", "l1"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_and_a_refresh_on_one_thread_all_reach_its_row() -> None:
    # Two batches shift the row (mail.threads.threads_shift) while an archive sums it again.
    for attempt in range(5):
        thread_id = f"thr_shift{attempt}"
        first = MessageFactory(thread_id=thread_id, storage_key="")
        messages = [first, *(MessageFactory(agent=first.agent, thread_id=thread_id, storage_key="") for _ in range(2))]
        threads_refresh(keys=[(first.agent_id, thread_id)])

        pks = [m.pk for m in messages]
        run_concurrently(
            [
                lambda pks=pks: services.messages_batch_update(
                    messages=Message.objects.filter(pk=pks[0]), is_read=True
                ),
                lambda pks=pks: services.messages_batch_update(
                    messages=Message.objects.filter(pk=pks[1]), add_labels=["l1"], is_read=True
                ),
                lambda pks=pks: services.message_archive_set(message=Message.objects.get(pk=pks[2]), archived=True),
            ]
        )

        row = Thread.objects.get(thread_id=thread_id)
        assert (row.unread_count, row.labels, row.archived) == (0, ["l1"], False)
