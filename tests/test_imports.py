"""Imports point one way and are visible: no module of the apps imports a first-party module
inside a function (the way an import cycle hides), and import-linter's contracts hold."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("agentmail_client", "assmbl", "assmbl_mcp", "compat", "directory", "mail", "webhooks")


def _first_party(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        names = [node.module or ""] if node.level == 0 else ["(relative)"]
    else:
        names = [alias.name for alias in node.names]
    return [n for n in names if n == "(relative)" or n.split(".")[0] in FIRST_PARTY]


def function_level_imports(path: Path) -> list[str]:
    """``file:line module`` for each first-party import inside a function or method."""
    found = []
    for outer in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(outer, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        for node in ast.walk(outer):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found += [f"{path.name}:{node.lineno} {name}" for name in _first_party(node)]
    return sorted(set(found))


def _modules() -> list[Path]:
    return sorted(
        path
        for package in FIRST_PARTY
        if (ROOT / package).is_dir()
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_no_module_imports_a_first_party_module_inside_a_function() -> None:
    found = [f"{path.parent.relative_to(ROOT)}/{hit}" for path in _modules() for hit in function_level_imports(path)]
    assert found == []


def test_it_finds_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text(
        "import json\n\ndef f():\n    from mail.models import Message\n    import json\n    return Message\n"
    )

    assert function_level_imports(module) == ["probe.py:4 mail.models"]


LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed (requirements-dev.txt)")
def test_the_import_contracts_hold() -> None:
    lint = str(LINT_IMPORTS)
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
