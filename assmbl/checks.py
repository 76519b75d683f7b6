"""Misconfiguration surfaces as system checks whose messages name the fix."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=False)
def check_secrets(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    if settings.DEBUG or settings.TESTING:
        return errors
    if settings.SECRET_KEY == settings.INSECURE_PLACEHOLDER:
        errors.append(
            Error(
                "SECRET_KEY is not set.",
                hint="Set SECRET_KEY to a long random string (python -c 'import secrets; print(secrets.token_urlsafe(50))'), or DEBUG=1 for local development.",
                id="assmbl.E001",
            )
        )
    if settings.TOKEN_PEPPER == settings.INSECURE_PLACEHOLDER:
        errors.append(
            Error(
                "TOKEN_PEPPER is not set.",
                hint="Set TOKEN_PEPPER to a long random string kept apart from the database; API tokens are stored as HMACs keyed with it.",
                id="assmbl.E002",
            )
        )
    return errors


@register()
def check_storage_and_outbound(app_configs: Any = None, **kwargs: Any) -> list[Error | Warning]:
    problems: list[Error | Warning] = []
    if settings.MAIL_STORAGE not in {"file", "s3"}:
        problems.append(
            Error(f"MAIL_STORAGE={settings.MAIL_STORAGE!r} is not known.", hint="Use 'file' or 's3'.", id="assmbl.E003")
        )
    if settings.MAIL_STORAGE == "s3" and not settings.MAIL_S3_BUCKET:
        problems.append(
            Error(
                "MAIL_STORAGE=s3 needs a bucket.",
                hint="Set MAIL_S3_BUCKET to the bucket SES writes raw mail to.",
                id="assmbl.E004",
            )
        )
    if settings.MAIL_OUTBOUND not in {"local", "smtp", "ses"}:
        problems.append(
            Error(
                f"MAIL_OUTBOUND={settings.MAIL_OUTBOUND!r} is not known.",
                hint="Use 'local', 'smtp' or 'ses'.",
                id="assmbl.E005",
            )
        )
    if settings.MAIL_OUTBOUND == "smtp" and not settings.OUTBOUND_SMTP_URL:
        problems.append(
            Error(
                "MAIL_OUTBOUND=smtp needs a relay.",
                hint="Set OUTBOUND_SMTP_URL, e.g. smtp://user:pass@smtp.example.com:587.",
                id="assmbl.E006",
            )
        )
    if "." not in settings.MAIL_DOMAIN or "@" in settings.MAIL_DOMAIN:
        problems.append(
            Error(
                f"MAIL_DOMAIN={settings.MAIL_DOMAIN!r} is not a domain.",
                hint="Set MAIL_DOMAIN to the domain agents receive mail at, e.g. agents.example.com.",
                id="assmbl.E007",
            )
        )
    return problems


@register()
def check_mail_parser(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    # mail.parsing.PARSERS; an unknown name would otherwise fail every delivery at its parse.
    if settings.MAIL_PARSER in {"mimetree", "stdlib"}:
        return []
    return [
        Error(
            f"MAIL_PARSER={settings.MAIL_PARSER!r} is not known.",
            hint="Use 'mimetree' (the default) or 'stdlib' (docs/decisions/0021-mimetree.md).",
            id="assmbl.E021",
        )
    ]
