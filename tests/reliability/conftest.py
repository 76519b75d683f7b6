from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The crash, load and fuzz proofs: `make test-slow` runs them, the default run does not.
    for item in items:
        if "tests/reliability/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)
            item.add_marker(pytest.mark.slow)
