"""SES_SNS_FETCHER for service processes started by the reliability tests: serves the
test's self-signed certificate (a PEM file named by SNS_TEST_CERT_PEM) for any .pem URL."""

from __future__ import annotations

import os
from pathlib import Path


def fetch(url: str) -> bytes:
    if url.endswith(".pem"):
        return Path(os.environ["SNS_TEST_CERT_PEM"]).read_bytes()
    return b"<ConfirmSubscriptionResponse/>"
