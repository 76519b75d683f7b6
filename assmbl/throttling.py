"""API rate limiting: one counter per token, in a store every web process shares
(``assmbl.ratelimit``: Redis in the stack, a local SQLite file embedded)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from assmbl.ratelimit import window_hit


class TokenRateThrottle(SimpleRateThrottle):
    """``API_RATE_LIMIT`` (e.g. ``1200/min``) per token, counted in fixed windows."""

    # Set by SimpleRateThrottle.__init__ from the rate; the stubs leave them out.
    num_requests: int
    duration: int

    scope = "token"
    reset_in: float | None = None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = getattr(request, "auth", None)
        if token is None:
            return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
        return self.cache_format % {"scope": self.scope, "ident": token.prefix}

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        hit = window_hit(key=key, period=self.duration, now=self.timer())
        self.reset_in = hit.reset_in
        return hit.count <= self.num_requests

    def wait(self) -> float | None:
        """Seconds until the window ends: the 429's Retry-After."""
        return self.reset_in
