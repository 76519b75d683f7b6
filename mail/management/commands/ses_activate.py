from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mail.sources.ses_rules import rule_target_from_settings, rule_target_from_stack, ses_rules_activate, stack_outputs


class Command(BaseCommand):
    help = (
        "Create or update the SES receipt rule set for MAIL_DOMAIN (S3 action to the mail bucket "
        "+ SNS topic) and make it active. Idempotent; prints what it changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stack-name", help="read names from this CloudFormation stack's outputs")
        parser.add_argument("--region", default=settings.AWS_REGION)
        parser.add_argument("--dry-run", action="store_true", help="print the changes, make none")

    def handle(self, *args: Any, stack_name: str | None, region: str, dry_run: bool, **options: Any) -> None:
        target = (
            rule_target_from_stack(stack_outputs(stack_name=stack_name, region=region))
            if stack_name
            else rule_target_from_settings()
        )
        client = boto3.client("ses", region_name=region)
        try:
            activation = ses_rules_activate(client=client, target=target, dry_run=dry_run)
        except ValueError as err:
            raise CommandError(str(err)) from err
        except ClientError as err:
            # Usually the bucket policy (SES PutObject) or topic policy (SES Publish) is missing:
            # deploy/aws/template.yaml grants both.
            raise CommandError(
                f"SES refused: {err}. Check the bucket and topic policies (deploy/aws/template.yaml)."
            ) from err
        prefix = "would " if dry_run else ""
        for change in activation.changes:
            self.stdout.write(f"{prefix}{change}")
        if not activation.changes:
            self.stdout.write(f"no changes: {target.rule_set} is active and routes {target.domain}")
