"""Provider callbacks outside /v1/: SES inbound over SNS, SES tracking events."""

from __future__ import annotations

from mail import tracking
from mail.sources import views

urlpatterns = [*views.urlpatterns, *tracking.urlpatterns]
