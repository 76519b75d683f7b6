"""Library internals are touched in compat/ only: no module elsewhere overrides, calls or
writes the private names of aiosmtpd, gunicorn, pyspf, anymail or the email package that
compat/ adapts (or that have a public replacement), and the stdlib's feed parser runs with the stdlib's own ``re``."""

from __future__ import annotations

import email.feedparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("assmbl", "mail", "directory", "webhooks")

# The internals compat/ owns: aiosmtpd's session and controller, the email package's
# Message and feed parser, pyspf's DNS driver slot; and anymail's SNS parser, which nothing
# needs (its views are extended through validate_request and parse_events). A first-party
# module naming one of them outside compat/ is relying on a library's insides where no
# version check covers it.
PRIVATE = re.compile(
    r"\._(?:payload|getaddr|call_handler_hook|set_post_data_state|create_server|trigger_server|"
    r"factory_invoker|decode_data|reader|writer|handle_hooks)\b|email\.feedparser\.re\b|gunicorn\.workers\b|"
    r"\bspf\.DNSLookup|_parse_sns_message|\._sns_message\b"
)


def test_no_module_outside_compat_touches_the_internals_compat_adapts() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_feed_parser_runs_with_the_stdlibs_re() -> None:
    # Django is set up (every app's ready() has run), as in every process that parses mail.
    assert email.feedparser.re is re
