"""Routes of the directory API under /v1/: agents (operator) and senders (trust)."""

from __future__ import annotations

from directory.api import agents, senders

urlpatterns = [*agents.urlpatterns, *senders.urlpatterns]
