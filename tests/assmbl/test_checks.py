from __future__ import annotations

from typing import Any

from assmbl.checks import check_mail_parser, check_secrets, check_storage_and_outbound


def test_a_missing_secret_key_outside_debug_is_an_error(settings: Any) -> None:
    settings.DEBUG = False
    settings.TESTING = False
    settings.SECRET_KEY = settings.INSECURE_PLACEHOLDER
    ids = [e.id for e in check_secrets()]
    assert "assmbl.E001" in ids


def test_debug_mode_runs_without_secrets(settings: Any) -> None:
    settings.DEBUG = True
    settings.SECRET_KEY = settings.INSECURE_PLACEHOLDER
    assert check_secrets() == []


def test_s3_storage_without_a_bucket_names_the_setting(settings: Any) -> None:
    settings.MAIL_STORAGE = "s3"
    settings.MAIL_S3_BUCKET = ""
    [error] = [e for e in check_storage_and_outbound() if e.id == "assmbl.E004"]
    assert "MAIL_S3_BUCKET" in error.hint


def test_an_unknown_mail_parser_is_an_error_naming_the_choices(settings: Any) -> None:
    settings.MAIL_PARSER = "fast"
    [error] = check_mail_parser()
    assert (error.id, error.hint.startswith("Use 'mimetree' (the default) or 'stdlib'")) == ("assmbl.E021", True)
    settings.MAIL_PARSER = "stdlib"
    assert check_mail_parser() == []
