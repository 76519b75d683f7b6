"""The development settings of the last ``make run`` (or ``make run-stack``), recorded in
``DATA_DIR/dev.env`` so that ``manage.py`` run from another shell reaches the same service.

``make run`` writes the file before it starts anything: DEBUG=1, the ports it serves on,
the engines it was given, and a SECRET_KEY and TOKEN_PEPPER generated on the first run and
kept afterwards (API tokens are HMACs keyed with the pepper, so a new pepper would void
every token). ``manage.py`` reads the file only when it exists, and a variable only when the
environment does not set it. Nothing outside ``make run`` writes it, so a production
machine, which has no such file, still refuses to start without its secrets
(assmbl.E001/E002).

    python -m assmbl.devenv            # what make run calls: (re)write DATA_DIR/dev.env
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

FILENAME = "dev.env"
BASE_DIR = Path(__file__).resolve().parent.parent
SECRETS = ("SECRET_KEY", "TOKEN_PEPPER")
# What the Makefile's run targets set for the service, and what a developer may pass to
# them (`MAIL_DOMAIN=... make run`): the other shell must see the same values.
RECORDED = (
    "DEBUG",
    "WEBHOOKS_ALLOW_LOOPBACK",
    "HTTP_PORT",
    "SMTP_PORT",
    "SUBMISSION_PORT",
    "PUBLIC_BASE_URL",
    "MAIL_DOMAIN",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
)


def devenv_path(environ: Mapping[str, str]) -> Path:
    """DATA_DIR/dev.env, DATA_DIR resolved as assmbl.settings resolves it."""
    return Path(environ.get("DATA_DIR", str(BASE_DIR / "var")).strip()).resolve() / FILENAME


def devenv_read(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def devenv_load(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Fill ``environ`` from DATA_DIR/dev.env, if there is one, without overriding anything
    it sets. Returns what was taken from the file."""
    path = devenv_path(environ)
    if not path.is_file():
        return {}
    taken = {name: value for name, value in devenv_read(path).items() if name not in environ}
    environ.update(taken)
    return taken


def devenv_write(*, environ: Mapping[str, str], updates: Mapping[str, str] | None = None) -> Path:
    """(Re)write DATA_DIR/dev.env from ``environ`` (the run target's), keeping the secrets of
    an earlier run unless ``environ`` sets them; ``updates`` are added on top (the engines
    ``serve --stack`` started)."""
    path = devenv_path(environ)
    previous = devenv_read(path) if path.is_file() else {}
    values = {name: environ[name] for name in RECORDED if environ.get(name)}
    values.update(updates or {})
    for name in SECRETS:
        values[name] = environ.get(name) or previous.get(name) or secrets.token_urlsafe(50)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Created 0600: the file holds the secrets.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("# Written by make run for manage.py in other shells; development only.\n")
        out.writelines(f"{name}={value}\n" for name, value in values.items())
    os.replace(tmp, path)
    return path


def devenv_update(updates: Mapping[str, str]) -> None:
    """Add ``updates`` to an existing DATA_DIR/dev.env (a development run); no file, no-op."""
    if devenv_path(os.environ).is_file():
        devenv_write(environ=os.environ, updates=updates)


if __name__ == "__main__":
    sys.stdout.write(f"development settings in {devenv_write(environ=os.environ)}\n")
