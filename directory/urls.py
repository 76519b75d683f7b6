"""Routes of the directory API under /v1/: agents (the senders routes are mail's: trusting
a sender releases its held mail)."""

from __future__ import annotations

from directory.api import agents

urlpatterns = [*agents.urlpatterns]
