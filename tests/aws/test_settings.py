"""MAIL_STORAGE=s3 in the environment configures both raw-mail storages as django-storages
S3Storage with SigV4, the bucket and the prefixes the SES rule writes under."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({k: settings.STORAGES[k] for k in ("default", "archive")}))
"""


def test_it_configures_s3_storages_from_the_environment() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "assmbl.settings",
        "MAIL_STORAGE": "s3",
        "MAIL_S3_BUCKET": "mail-bucket",
        "MAIL_S3_PREFIX": "inbound",
        "ARCHIVE_S3_PREFIX": "cold",
        "AWS_REGION": "eu-west-1",
    }
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    storages = json.loads(out.stdout.strip().splitlines()[-1])
    for name, location in (("default", "inbound"), ("archive", "cold")):
        assert storages[name]["BACKEND"] == "storages.backends.s3.S3Storage"
        options = storages[name]["OPTIONS"]
        assert (options["bucket_name"], options["location"]) == ("mail-bucket", location)
        assert (options["signature_version"], options["region_name"]) == ("s3v4", "eu-west-1")
