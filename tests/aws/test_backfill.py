"""manage.py backfill: raw objects in the mail storage (local files, or a moto bucket)
become indexed messages once; reruns and resumes add nothing."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from mail.models import InboundDelivery, Message
from mail.storage import mail_storage
from tests.aws.conftest import BUCKET
from tests.conftest import Persona
from tests.mime import build_mail

TESTDATA = Path(__file__).resolve().parent.parent / "mail" / "testdata"


@pytest.fixture(autouse=True)
def _own_storage(settings: Any, tmp_path: Path) -> None:
    """A mail storage of this test's own: backfill walks all of it."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "mail")},
        },
    }


def _put(key: str, raw: bytes) -> None:
    mail_storage().save(key, ContentFile(raw))


def _backfill(tmp_path: Path, *args: str) -> str:
    out = StringIO()
    call_command("backfill", "--checkpoint", str(tmp_path / "checkpoint.json"), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def restored(owner: Persona, teammate: Persona) -> None:
    """What a restore leaves: objects with no delivery rows."""
    _put("restore/a.eml", build_mail(to=owner.address, subject="a"))
    _put("restore/b.eml", build_mail(to="x@example.com", subject="b", headers={"Delivered-To": teammate.address}))
    _put("restore/c.eml", (TESTDATA / "mime-nested-40-deep.eml").read_bytes())
    _put("restore/AMAZON_SES_SETUP_NOTIFICATION", b"Amazon SES setup notification")


def test_it_reingests_local_objects_once(restored: None, owner: Persona, teammate: Persona, tmp_path: Path) -> None:
    assert "new=2 duplicate=0 quarantined=1 skipped=1" in _backfill(tmp_path)
    assert Message.objects.for_agent(owner.agent).count() == 2
    assert Message.objects.for_agent(teammate.agent).get().subject == "b"  # Delivered-To wins over To
    assert set(InboundDelivery.objects.values_list("external_id", flat=True)) == {
        "backfill:restore/a.eml",
        "backfill:restore/b.eml",
        "backfill:restore/c.eml",
    }

    assert "new=0 duplicate=3 quarantined=0" in _backfill(tmp_path, "--restart")
    assert Message.objects.count() == 3


def test_it_skips_objects_a_delivery_already_points_at(owner: Persona, deliver: Any, tmp_path: Path) -> None:
    deliver(build_mail(to=owner.address, subject="live"), to=owner.address)
    assert "new=0 duplicate=1" in _backfill(tmp_path)
    assert Message.objects.count() == 1


def test_it_resumes_after_the_checkpoint(restored: None, tmp_path: Path) -> None:
    (tmp_path / "checkpoint.json").write_text('{"prefix": "restore/", "last_key": "restore/a.eml"}')
    assert "new=1 duplicate=0 quarantined=1 skipped=0" in _backfill(tmp_path, "--prefix", "restore/")
    assert not InboundDelivery.objects.filter(storage_key="restore/a.eml").exists()
    assert "new=0 duplicate=0 quarantined=0 skipped=0" in _backfill(tmp_path, "--prefix", "restore/")


def test_it_changes_nothing_on_a_dry_run(restored: None, tmp_path: Path) -> None:
    assert "would add=3" in _backfill(tmp_path, "--dry-run")
    assert not InboundDelivery.objects.exists()
    assert not (tmp_path / "checkpoint.json").exists()


def test_it_filters_by_prefix_and_since(restored: None, tmp_path: Path) -> None:
    assert "new=0 duplicate=0 quarantined=0 skipped=0" in _backfill(tmp_path, "--prefix", "elsewhere/")
    assert "new=0 duplicate=0 quarantined=0 skipped=0" in _backfill(tmp_path, "--since", "2999-01-01")
    assert "new=2" in _backfill(tmp_path, "--since", "2000-01-01")


def test_it_reingests_objects_ses_wrote_to_s3(s3: Any, owner: Persona, tmp_path: Path) -> None:
    # SES keys sit under the storage prefix: raw/<message id>, storage key <message id>.
    s3.put_object(Bucket=BUCKET, Key="raw/AMAZON_SES_SETUP_NOTIFICATION", Body=b"setup")
    s3.put_object(Bucket=BUCKET, Key="raw/0ses1", Body=build_mail(to=owner.address, subject="from s3"))
    s3.put_object(Bucket=BUCKET, Key="archive/0ses2", Body=build_mail(to=owner.address, subject="archived"))

    assert "new=1 duplicate=0 quarantined=0 skipped=1" in _backfill(tmp_path)
    delivery = InboundDelivery.objects.get()
    assert (delivery.storage_key, delivery.source) == ("0ses1", "backfill")
    assert Message.objects.for_agent(owner.agent).get().subject == "from s3"
    assert "new=0 duplicate=1" in _backfill(tmp_path, "--restart")


def test_an_attachment_that_looks_like_a_mail_to_another_agent_is_not_backfilled(
    owner: Persona, teammate: Persona, deliver: Any, tmp_path: Path
) -> None:
    # A sender's attachment whose bytes are a mail "to" another tenant's agent: stored as
    # a part in the mail storage, it must never become that agent's mail.
    forged = f"To: {teammate.address}\r\nSubject: forged\r\n\r\nnot for you\r\n".encode()
    raw = build_mail(to=owner.address, subject="carrier", attachments=[("x.bin", "application/octet-stream", forged)])
    deliver(raw, to=owner.address)
    assert mail_storage().exists("parts")

    assert "new=0 duplicate=1 quarantined=0 skipped=0" in _backfill(tmp_path)
    assert not Message.objects.for_agent(teammate.agent).exists()
