"""deploy/aws/template.yaml: lints clean, deploys (as far as moto models it), and its
outputs are what ses_activate --stack-name needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import call_command

from tests.aws.conftest import REGION

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "template.yaml"


def test_it_passes_cfn_lint() -> None:
    cfn_lint = shutil.which("cfn-lint") or str(Path(sys.executable).parent / "cfn-lint")
    if not Path(cfn_lint).exists():
        pytest.skip("cfn-lint is not installed (requirements-dev.txt)")
    result = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_it_activates_from_the_stack_outputs(aws: None, settings: Any) -> None:
    settings.SES_RULE_SET_NAME = "assmbl-mail"
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="assmbl",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": "MailDomain", "ParameterValue": "agents.example.com"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    outputs = {
        o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="assmbl")["Stacks"][0]["Outputs"]
    }
    assert outputs["ActivationCommand"] == "python manage.py ses_activate --stack-name assmbl --region us-east-1"
    assert f"MAIL_S3_BUCKET={outputs['BucketName']}" in outputs["Environment"]

    out = StringIO()
    call_command("ses_activate", "--stack-name", "assmbl", "--region", REGION, stdout=out)
    assert "set active receipt rule set assmbl-mail" in out.getvalue()
    rule = boto3.client("ses", region_name=REGION).describe_active_receipt_rule_set()["Rules"][0]
    assert rule["Recipients"] == ["agents.example.com"]
    assert rule["Actions"][0]["S3Action"] == {
        "BucketName": outputs["BucketName"],
        "ObjectKeyPrefix": "raw/",
        "TopicArn": outputs["TopicArn"],
    }
    again = StringIO()
    call_command("ses_activate", "--stack-name", "assmbl", "--region", REGION, stdout=again)
    assert "no changes" in again.getvalue()
