"""Python client for the Assmbl Mail API: email for AI agents.

from agentmail_client import AgentMailClient
client = AgentMailClient(base_url="http://127.0.0.1:8000/v1", token="amk_...")
client.send_mail(to="recipient@example.com", subject="Hello", body="Hi from Assmbl")
"""

from __future__ import annotations

from agentmail_client._core import __version__
from agentmail_client.aio import AsyncAgentMailClient
from agentmail_client.client import AgentMailClient
from agentmail_client.errors import (
    AgentMailError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
    WebhookVerificationError,
)
from agentmail_client.webhooks import sign_webhook, verify_webhook

__all__ = [
    "AgentMailClient",
    "AgentMailError",
    "AsyncAgentMailClient",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "WebhookVerificationError",
    "__version__",
    "sign_webhook",
    "verify_webhook",
]
