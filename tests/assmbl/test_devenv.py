"""assmbl/devenv.py and manage.py: another shell beside `make run` gets the settings that
`make run` recorded in DATA_DIR/dev.env; a machine without that file still needs its secrets."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assmbl.devenv import devenv_read, devenv_update

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "from django.conf import settings; import json; print(json.dumps({'debug': settings.DEBUG, "
    "'secret_key': settings.SECRET_KEY, 'pepper': settings.TOKEN_PEPPER, 'base': settings.PUBLIC_BASE_URL}))"
)


def _shell(data_dir: Path, **extra: str) -> dict[str, str]:
    """A fresh shell's environment: nothing of the service's settings, only where its data is."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data_dir), "DATA_DIR": str(data_dir), **extra}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _probe(env: dict[str, str]) -> dict[str, object]:
    out = _run(env, "manage.py", "shell", "-c", PROBE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _make_run_records(data_dir: Path, **extra: str) -> None:
    """What `make run` does first, with the variables the Makefile exports."""
    env = _shell(
        data_dir, **{"DEBUG": "1", "WEBHOOKS_ALLOW_LOOPBACK": "1", "HTTP_PORT": "18417", "SMTP_PORT": "12417", **extra}
    )
    out = _run(env, "-m", "assmbl.devenv")
    assert out.returncode == 0, out.stderr


def test_without_dev_env_manage_py_still_refuses_to_run_without_secrets(tmp_path: Path) -> None:
    out = _run(_shell(tmp_path), "manage.py", "check")

    assert out.returncode != 0
    assert "assmbl.E001" in out.stderr and "assmbl.E002" in out.stderr


def test_manage_py_in_another_shell_runs_with_what_make_run_recorded(tmp_path: Path) -> None:
    _make_run_records(tmp_path)

    assert _run(_shell(tmp_path), "manage.py", "check").returncode == 0
    seen = _probe(_shell(tmp_path))
    assert seen["debug"] is True
    assert seen["base"] == "http://127.0.0.1:18417"
    # Generated secrets, not the placeholder anyone can read in settings.py.
    assert "insecure" not in seen["secret_key"] and "insecure" not in seen["pepper"]
    assert len(seen["secret_key"]) >= 50 and seen["secret_key"] != seen["pepper"]


def test_an_operator_token_made_in_another_shell_authenticates_in_the_service(tmp_path: Path) -> None:
    _make_run_records(tmp_path)
    assert _run(_shell(tmp_path), "manage.py", "migrate", "--noinput", "-v", "0").returncode == 0

    out = _run(_shell(tmp_path), "manage.py", "create_operator_token", "--json")

    assert out.returncode == 0, out.stderr
    token = json.loads(out.stdout)["token"]
    # The service's processes: make run's environment, the secrets loaded from dev.env by
    # `manage.py serve` and passed on to its children.
    service = {**_shell(tmp_path), **devenv_read(tmp_path / "dev.env"), "DJANGO_SETTINGS_MODULE": "assmbl.settings"}
    check = f"from directory.services import token_authenticate; print(token_authenticate({token!r}) is not None)"
    assert _run(service, "-c", f"import django; django.setup(); {check}").stdout.strip() == "True"


def test_the_environment_wins_over_dev_env(tmp_path: Path) -> None:
    _make_run_records(tmp_path)

    seen = _probe(_shell(tmp_path, DEBUG="0", SECRET_KEY="k" * 50, HTTP_PORT="9999"))

    assert (seen["debug"], seen["secret_key"], seen["base"]) == (False, "k" * 50, "http://127.0.0.1:9999")
    assert seen["pepper"] == devenv_read(tmp_path / "dev.env")["TOKEN_PEPPER"]


def test_a_second_make_run_keeps_the_secrets_and_records_its_new_ports(tmp_path: Path) -> None:
    _make_run_records(tmp_path)
    first = devenv_read(tmp_path / "dev.env")
    _make_run_records(tmp_path, HTTP_PORT="18418")
    second = devenv_read(tmp_path / "dev.env")

    assert (second["SECRET_KEY"], second["TOKEN_PEPPER"]) == (first["SECRET_KEY"], first["TOKEN_PEPPER"])
    assert (first["HTTP_PORT"], second["HTTP_PORT"], second["DEBUG"]) == ("18417", "18418", "1")
    assert stat.S_IMODE((tmp_path / "dev.env").stat().st_mode) == 0o600


def test_run_stack_adds_the_engines_it_started_so_the_other_shell_uses_the_same_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_run_records(tmp_path)
    before = devenv_read(tmp_path / "dev.env")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in before.items():
        monkeypatch.setenv(name, value)  # what `manage.py serve --stack` holds after loading it

    devenv_update({"DATABASE_URL": "postgres://assmbl@127.0.0.1:54320/assmbl"})

    after = devenv_read(tmp_path / "dev.env")
    assert after == {**before, "DATABASE_URL": "postgres://assmbl@127.0.0.1:54320/assmbl"}


def test_without_dev_env_serve_stack_writes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))

    devenv_update({"DATABASE_URL": "postgres://assmbl@127.0.0.1:54320/assmbl"})

    assert not (tmp_path / "dev.env").exists()
