"""Fixtures of the mail tests: agent-to-agent delivery through the real local backend
(pytest-django swaps EMAIL_BACKEND for locmem), and a POST that runs the on-commit
send task."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mail.dns import dkim_key, fake_dns, signed_by  # noqa: F401  (the trust and authn tests' fixtures)


@pytest.fixture(autouse=True)
def local_backend(settings: Any) -> None:
    settings.EMAIL_BACKEND = "mail.backends.LocalEmailBackend"


@pytest.fixture
def post(django_capture_on_commit_callbacks: Any) -> Any:
    def _post(persona: Any, url: str, body: Any, **headers: str) -> Any:
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        with django_capture_on_commit_callbacks(execute=True):
            return persona.client.post(url, body, format="json", **extra)

    return _post
