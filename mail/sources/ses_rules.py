"""SES receipt rules for MAIL_DOMAIN: what ``ses_activate`` writes and ``ses_status`` reads.

The rule stores each message in S3 under ``MAIL_S3_PREFIX/`` (so its object key, minus the
prefix, is the mail storage key) and notifies the SNS topic, which pushes to the webhook
and/or the SQS queue. CloudFormation can create rule sets but cannot make one active: that
is the step people miss ("empty inbox despite sent mail"), and what ``ses_activate`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class RuleTarget:
    rule_set: str
    rule_name: str
    domain: str
    bucket: str
    prefix: str
    topic_arn: str

    def rule(self) -> dict[str, Any]:
        s3_action: dict[str, Any] = {"BucketName": self.bucket, "ObjectKeyPrefix": f"{self.prefix.strip('/')}/"}
        if self.topic_arn:
            s3_action["TopicArn"] = self.topic_arn
        return {
            "Name": self.rule_name,
            "Enabled": True,
            "TlsPolicy": "Optional",
            "Recipients": [self.domain],
            "ScanEnabled": True,  # spam and virus verdicts land in the notification
            "Actions": [{"S3Action": s3_action}],
        }


def rule_target_from_settings() -> RuleTarget:
    return RuleTarget(
        rule_set=settings.SES_RULE_SET_NAME,
        rule_name=settings.SES_RULE_NAME,
        domain=settings.MAIL_DOMAIN,
        bucket=settings.MAIL_S3_BUCKET,
        prefix=settings.MAIL_S3_PREFIX,
        topic_arn=settings.SES_INBOUND_TOPIC_ARN,
    )


def stack_outputs(*, stack_name: str, region: str) -> dict[str, str]:
    import boto3

    client = boto3.client("cloudformation", region_name=region)
    stack = client.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def rule_target_from_stack(outputs: dict[str, str]) -> RuleTarget:
    base = rule_target_from_settings()
    return RuleTarget(
        rule_set=outputs.get("RuleSetName", base.rule_set),
        rule_name=outputs.get("RuleName", base.rule_name),
        domain=outputs.get("MailDomain", base.domain),
        bucket=outputs.get("BucketName", base.bucket),
        prefix=outputs.get("ObjectKeyPrefix", base.prefix),
        topic_arn=outputs.get("TopicArn", base.topic_arn),
    )


def _rule_set_rules(client: Any, name: str) -> list[dict[str, Any]] | None:
    try:
        return list(client.describe_receipt_rule_set(RuleSetName=name).get("Rules", []))
    except client.exceptions.RuleSetDoesNotExistException:
        return None


def _same_rule(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    keys = ("Enabled", "TlsPolicy", "Recipients", "ScanEnabled", "Actions")
    return all(current.get(k) == desired[k] for k in keys)


@dataclass
class Activation:
    changes: list[str] = field(default_factory=list)


def ses_rules_activate(*, client: Any, target: RuleTarget, dry_run: bool = False) -> Activation:
    """Make ``target`` the active rule set routing the domain. Idempotent: a second run
    reports no changes."""
    if not (target.rule_set and target.domain and target.bucket):
        raise ValueError("SES_RULE_SET_NAME, MAIL_DOMAIN and MAIL_S3_BUCKET must be set (or use --stack-name)")
    result = Activation()
    desired = target.rule()
    rules = _rule_set_rules(client, target.rule_set)
    if rules is None:
        result.changes.append(f"create receipt rule set {target.rule_set}")
        if not dry_run:
            client.create_receipt_rule_set(RuleSetName=target.rule_set)
        rules = []
    current = next((r for r in rules if r.get("Name") == target.rule_name), None)
    if current is None:
        result.changes.append(
            f"create rule {target.rule_name}: {target.domain} -> s3://{target.bucket}/{desired['Actions'][0]['S3Action']['ObjectKeyPrefix']} + {target.topic_arn or 'no topic'}"
        )
        if not dry_run:
            client.create_receipt_rule(RuleSetName=target.rule_set, Rule=desired)
    elif not _same_rule(current, desired):
        result.changes.append(
            f"update rule {target.rule_name} to route {target.domain} -> s3://{target.bucket} + {target.topic_arn or 'no topic'}"
        )
        if not dry_run:
            client.update_receipt_rule(RuleSetName=target.rule_set, Rule=desired)
    active = active_rule_set(client)
    if active is None or active[0] != target.rule_set:
        was = f" (was {active[0]})" if active else ""
        result.changes.append(f"set active receipt rule set {target.rule_set}{was}")
        if not dry_run:
            client.set_active_receipt_rule_set(RuleSetName=target.rule_set)
    return result


def active_rule_set(client: Any) -> tuple[str, list[dict[str, Any]]] | None:
    response = client.describe_active_receipt_rule_set()
    name = (response.get("Metadata") or {}).get("Name")
    if not name:
        return None
    return name, list(response.get("Rules", []))


def _recipient_matches(recipient: str, domain: str) -> bool:
    # SES recipient conditions: an address, a domain, or ".domain" for its subdomains.
    recipient = recipient.lower()
    if recipient.startswith("."):
        return domain.endswith(recipient)
    return recipient == domain


@dataclass(frozen=True)
class RoutingStatus:
    routed: bool
    rule_set: str | None
    rule: str | None
    detail: str


def ses_rules_status(*, client: Any, domain: str) -> RoutingStatus:
    active = active_rule_set(client)
    if active is None:
        return RoutingStatus(False, None, None, "no receipt rule set is active")
    name, rules = active
    for rule in rules:
        recipients = rule.get("Recipients") or []
        if not rule.get("Enabled") or (recipients and not any(_recipient_matches(r, domain) for r in recipients)):
            continue
        stores = [a for a in rule.get("Actions", []) if "S3Action" in a or "SNSAction" in a]
        if stores:
            return RoutingStatus(True, name, rule.get("Name"), f"rule {rule.get('Name')} routes {domain}")
        if any("StopAction" in a for a in rule.get("Actions", [])):
            break
    return RoutingStatus(False, name, None, f"active rule set {name} has no enabled rule storing mail for {domain}")
