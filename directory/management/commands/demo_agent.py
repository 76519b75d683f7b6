"""Create the demo agent of the embedded mode, if there is none, and print how to use it.

Tokens are stored hashed, so the demo token is kept in DATA_DIR/demo-token (mode 600) for
the developer's convenience; production agents are made with create_agent or the API.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from directory.models import Agent
from directory.services import agent_create, agent_token_rotate, token_authenticate


class Command(BaseCommand):
    help = "Ensure the demo agent exists and print its address, token and example commands."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent-id", default="demo")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, agent_id: str, json: bool, **options: Any) -> None:
        token_file = settings.DATA_DIR / "demo-token"
        agent = Agent.objects.filter(agent_id=agent_id).first()
        token = token_file.read_text().strip() if token_file.exists() else ""
        if agent is None:
            agent, issued = agent_create(agent_id=agent_id, display_name="Demo agent")
            token = issued.plaintext
        elif not token or token_authenticate(token) is None:
            token = agent_token_rotate(agent=agent, label="demo").plaintext
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token + "\n")
        os.chmod(token_file, 0o600)
        if json:
            self.stdout.write(_dumps({"agent_id": agent.agent_id, "address": agent.address, "token": token}))
            return
        http = os.environ.get("HTTP_PORT", "8000")
        smtp = settings.SMTP_PORT
        self.stdout.write(
            f"""
Demo agent: {agent.address}
Token:      {token}

Send it a mail:
  swaks --server 127.0.0.1:{smtp} --to {agent.address} --from you@example.com --header 'Subject: hello'
  python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', {smtp}).sendmail('you@example.com', ['{agent.address}'], b'Subject: hello\\r\\n\\r\\nhi')"
Read the inbox:
  curl -s -H 'Authorization: Bearer {token}' http://127.0.0.1:{http}/v1/inbox
API docs: http://127.0.0.1:{http}/v1/docs
"""
        )


def _dumps(value: dict[str, str]) -> str:
    return json.dumps(value)
