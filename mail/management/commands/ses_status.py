from __future__ import annotations

from typing import Any

import boto3
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mail.sources.ses_rules import ses_rules_status


class Command(BaseCommand):
    help = "Does the active SES receipt rule set route MAIL_DOMAIN? (Empty inbox despite sent mail: check this.)"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--region", default=settings.AWS_REGION)
        parser.add_argument("--domain", default=settings.MAIL_DOMAIN)

    def handle(self, *args: Any, region: str, domain: str, **options: Any) -> None:
        status = ses_rules_status(client=boto3.client("ses", region_name=region), domain=domain)
        if status.routed:
            self.stdout.write(f"OK: active rule set {status.rule_set}, {status.detail}")
            return
        # Non-zero exit so a health check or CI step notices.
        raise CommandError(
            f"NOT ROUTED: {status.detail}. Fix: run `python manage.py ses_activate` (or `--stack-name <stack>`)."
        )
