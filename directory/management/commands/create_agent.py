from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from assmbl.domain import DomainError
from directory.models import Agent
from directory.services import AgentExists, agent_create


class Command(BaseCommand):
    help = "Create an agent and print its address and a new API token (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("agent_id")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--policy", default=Agent.Policy.OPEN, choices=Agent.Policy.values)
        parser.add_argument("--json", action="store_true", help='print {"agent_id", "address", "token"}')

    def handle(self, *args: Any, agent_id: str, display_name: str, policy: str, json: bool, **options: Any) -> None:
        try:
            agent, issued = agent_create(agent_id=agent_id, display_name=display_name, policy=policy)
        except AgentExists:
            raise CommandError(f"An agent {agent_id!r} already exists.") from None
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if json:
            self.stdout.write(_json({"agent_id": agent.agent_id, "address": agent.address, "token": issued.plaintext}))
        else:
            self.stdout.write(f"address: {agent.address}\ntoken:   {issued.plaintext}  (shown once)")


def _json(value: dict[str, str]) -> str:
    return json.dumps(value)
