from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from directory.models import Account, ApiToken
from directory.services import DEFAULT_ACCOUNT_NAME, token_create


class Command(BaseCommand):
    help = "Create an operator token for an account (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", default=DEFAULT_ACCOUNT_NAME)
        parser.add_argument("--label", default="")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, account: str, label: str, json: bool, **options: Any) -> None:
        acct, _ = Account.objects.get_or_create(name=account)
        issued = token_create(kind=ApiToken.Kind.OPERATOR, account=acct, label=label)
        if json:
            self.stdout.write(_dumps({"account": acct.name, "token": issued.plaintext}))
        else:
            self.stdout.write(f"operator token for {acct.name}: {issued.plaintext}  (shown once)")


def _dumps(value: dict[str, str]) -> str:
    return json.dumps(value)
