"""Ingest's parse step through the parser seam, with each MAIL_PARSER, alternating.

Times ``mail.parsing.parse_mail_stream`` (what ``delivery_process`` calls per mail: the
tree, the indexed headers, attachments' metadata, the preview) on
  realistic   N realistic ~5 KB mails (bench/ingest.py's);
  corpus      every mail of the shared corpus and tests/mail/testdata under 2 MB.
Each parser runs --rounds times, alternating; the best round counts (a shared machine's
noise only ever slows a round down).

Usage: python bench/parse.py [--n 1000] [--rounds 3] [--parsers mimetree,stdlib]
Prints one JSON object: ms per mail for each set and parser, and the ratio to "stdlib".
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")

import django  # noqa: E402

django.setup()

from _common import machine, realistic_mail  # noqa: E402
from django.test import override_settings  # noqa: E402

from mail.parsing import parse_mail_stream  # noqa: E402
from tests.mail.corpus import CORPUS_FILES, TESTDATA_FILES  # noqa: E402


def timed(mails: list[bytes], parser: str) -> float:
    """Seconds to parse every mail once with ``parser``."""
    with override_settings(MAIL_PARSER=parser):
        t0 = time.perf_counter()
        for raw in mails:
            parse_mail_stream(io.BytesIO(raw))
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parsers", default="mimetree,stdlib")
    args = parser.parse_args()
    names = args.parsers.split(",")
    sets = {
        "realistic": [realistic_mail(i, "agent@agents.test") for i in range(args.n)],
        "corpus": [p.read_bytes() for p in [*CORPUS_FILES, *TESTDATA_FILES] if p.stat().st_size < 2_000_000],
    }
    for mails in sets.values():  # imports and caches
        for name in names:
            timed(mails[:20], name)
    best: dict[str, dict[str, float]] = {s: {n: float("inf") for n in names} for s in sets}
    for _ in range(args.rounds):
        for set_name, mails in sets.items():
            for name in names:
                best[set_name][name] = min(best[set_name][name], timed(mails, name))
    result: dict[str, object] = {"machine": machine(), "rounds": args.rounds}
    for set_name, mails in sets.items():
        per_mail = {name: 1000 * best[set_name][name] / len(mails) for name in names}
        result[set_name] = {
            "mails": len(mails),
            "ms_per_mail": {name: round(ms, 4) for name, ms in per_mail.items()},
            "ratio_to_stdlib": {name: round(ms / per_mail["stdlib"], 3) for name, ms in per_mail.items()}
            if "stdlib" in per_mail
            else {},
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
