"""Routes of the mail API under /v1/; each api module owns its own paths."""

from __future__ import annotations

from mail.api import attachments, batch, drafts, inbox, messages, outbound, senders, sending, threads

urlpatterns = [
    *inbox.urlpatterns,
    # Before messages/<id>: messages/batch is not a message id.
    *batch.urlpatterns,
    *threads.urlpatterns,
    *messages.urlpatterns,
    *sending.urlpatterns,
    *attachments.urlpatterns,
    *senders.urlpatterns,
    *outbound.urlpatterns,
    *drafts.urlpatterns,
]
