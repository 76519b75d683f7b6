"""manage.py ses_activate / ses_status against moto SES."""

from __future__ import annotations

from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command

from tests.aws.conftest import REGION

TOPIC = "arn:aws:sns:us-east-1:123456789012:assmbl-inbound"


@pytest.fixture
def ses(aws: None, settings: Any) -> Any:
    settings.MAIL_DOMAIN = "agents.example.com"
    settings.MAIL_S3_BUCKET = "assmbl-mail"
    settings.MAIL_S3_PREFIX = "raw"
    settings.SES_RULE_SET_NAME = "assmbl-mail"
    settings.SES_RULE_NAME = "assmbl-inbound"
    settings.SES_INBOUND_TOPIC_ARN = TOPIC
    # SES checks that it can write to the bucket and publish to the topic.
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="assmbl-mail")
    boto3.client("sns", region_name=REGION).create_topic(Name="assmbl-inbound")
    return boto3.client("ses", region_name=REGION)


def _run(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_rule_set_and_activates_it_once(ses: Any) -> None:
    first = _run("ses_activate")
    assert "create receipt rule set assmbl-mail" in first
    assert "create rule assmbl-inbound" in first
    assert "set active receipt rule set assmbl-mail" in first

    active = ses.describe_active_receipt_rule_set()
    assert active["Metadata"]["Name"] == "assmbl-mail"
    (rule,) = active["Rules"]
    assert rule["Recipients"] == ["agents.example.com"]
    assert rule["Actions"] == [
        {"S3Action": {"BucketName": "assmbl-mail", "ObjectKeyPrefix": "raw/", "TopicArn": TOPIC}}
    ]

    assert "no changes" in _run("ses_activate")


def test_it_updates_a_drifted_rule_and_reactivates(ses: Any, settings: Any) -> None:
    _run("ses_activate")
    ses.create_receipt_rule_set(RuleSetName="someone-else")
    ses.set_active_receipt_rule_set(RuleSetName="someone-else")
    settings.MAIL_S3_PREFIX = "inbound"

    out = _run("ses_activate")
    assert "update rule assmbl-inbound" in out
    assert "set active receipt rule set assmbl-mail (was someone-else)" in out
    rule = ses.describe_receipt_rule(RuleSetName="assmbl-mail", RuleName="assmbl-inbound")["Rule"]
    assert rule["Actions"][0]["S3Action"]["ObjectKeyPrefix"] == "inbound/"


def test_it_changes_nothing_on_a_dry_run(ses: Any) -> None:
    out = _run("ses_activate", "--dry-run")
    assert "would create receipt rule set assmbl-mail" in out
    assert ses.list_receipt_rule_sets().get("RuleSets", []) == []


def test_it_reports_the_fix_when_the_domain_is_not_routed(ses: Any) -> None:
    with pytest.raises(CommandError, match="run `python manage.py ses_activate`"):
        _run("ses_status")
    _run("ses_activate")
    assert "OK: active rule set assmbl-mail" in _run("ses_status")


def test_it_reads_names_from_the_stack_outputs(ses: Any) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    template = """
Resources:
  Bucket: {Type: AWS::S3::Bucket, Properties: {BucketName: stack-mail}}
  Topic: {Type: AWS::SNS::Topic, Properties: {TopicName: stack-topic}}
Outputs:
  BucketName: {Value: stack-mail}
  ObjectKeyPrefix: {Value: mail}
  RuleSetName: {Value: stack-rules}
  RuleName: {Value: stack-rule}
  MailDomain: {Value: stack.example.com}
  TopicArn: {Value: arn:aws:sns:us-east-1:123456789012:stack-topic}
"""
    cfn.create_stack(StackName="assmbl", TemplateBody=template)
    out = _run("ses_activate", "--stack-name", "assmbl")
    assert "create rule stack-rule: stack.example.com -> s3://stack-mail/mail/" in out
    assert ses.describe_active_receipt_rule_set()["Metadata"]["Name"] == "stack-rules"
