"""Routes of the mail API under /v1/; each api module owns its own paths."""

from __future__ import annotations

from mail.api import attachments, drafts, inbox, messages, outbound, senders, sending

urlpatterns = [
    *inbox.urlpatterns,
    *messages.urlpatterns,
    *sending.urlpatterns,
    *attachments.urlpatterns,
    *senders.urlpatterns,
    *outbound.urlpatterns,
    *drafts.urlpatterns,
]
