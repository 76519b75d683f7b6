"""consume_sqs as a real process against a real (moto server) endpoint on 127.0.0.1:
stopped with SIGTERM and restarted while SQS redelivers, it loses nothing and duplicates
nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.db import connection
from moto.server import ThreadedMotoServer

from mail.models import InboundDelivery, Message
from tests.aws.conftest import BUCKET, REGION
from tests.aws.sns_signing import ses_notification
from tests.conftest import Persona, free_port
from tests.mime import build_mail

ROOT = Path(__file__).resolve().parents[2]
# A process-level crash/duplicate proof (~15 s): runs with the reliability suite, not by default.
pytestmark = [pytest.mark.slow, pytest.mark.reliability]


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        yield endpoint
    finally:
        server.stop()


def _database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def _until(condition: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def test_it_survives_a_restart_without_loss_or_duplicates(
    transactional_db: Any, owner: Persona, moto_server: str, tmp_path: Path
) -> None:
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="inbound", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]

    def send(n: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=f"raw/restart-{n}", Body=build_mail(to=owner.address, subject=f"n{n}"))
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=json.dumps(ses_notification(message_id=f"restart-{n}", recipients=[owner.address])),
        )

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "TOKEN_PEPPER": "y" * 50,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_S3_ENDPOINT_URL": moto_server,
        "AWS_REGION": REGION,
        "MAIL_STORAGE": "s3",
        "MAIL_S3_BUCKET": BUCKET,
        "MAIL_S3_PREFIX": "raw",
        "SES_SQS_QUEUE_URL": queue,
        "SES_SQS_WAIT_SECONDS": "1",
        "SES_SQS_VISIBILITY_SECONDS": "1",
        "CELERY_TASK_ALWAYS_EAGER": "1",
    }

    def consumer() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "manage.py", "consume_sqs"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    for n in range(5):
        send(n)
    first = consumer()
    try:
        _until(lambda: Message.objects.filter(agent=owner.agent).count() == 5, "5 messages")
    finally:
        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=30)[0].decode()
    assert first.returncode == 0, output

    # While it was down: SQS redelivers all five (as after a crash before delete), one is new.
    for n in range(5):
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=json.dumps(ses_notification(message_id=f"restart-{n}", recipients=[owner.address])),
        )
    send(5)
    second = consumer()
    try:
        _until(lambda: Message.objects.filter(agent=owner.agent).count() == 6, "the sixth message")

        def drained() -> bool:
            attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
            return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

        _until(drained, "an empty queue")
    finally:
        second.send_signal(signal.SIGTERM)
        output = second.communicate(timeout=30)[0].decode()
    assert second.returncode == 0, output
    assert "duplicate=" in output

    assert InboundDelivery.objects.filter(source="sqs").count() == 6
    assert sorted(Message.objects.filter(agent=owner.agent).values_list("subject", flat=True)) == [
        f"n{n}" for n in range(6)
    ]
