#!/usr/bin/env python
"""Migrate a database, create one agent with N seeded messages, print its token.
Used by bench/load.sh (the same seed as bench/api.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import django_setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--n", type=int, default=10000)
    args = parser.parse_args()
    django_setup(args.database_url, args.data_dir)
    from api import seed

    from directory.models import Account
    from directory.services import agent_create

    agent, issued = agent_create(agent_id="load", account=Account.objects.create(name="load"))
    seed(agent, args.n, "load_")
    print(issued.plaintext)


if __name__ == "__main__":
    main()
