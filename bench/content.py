"""What the content service (mail/content) costs per message.

Measures content_extract on:
  typical      the ingest benchmark's 5 KB mail (text and HTML alternative), N different mails, p50/p99;
  newsletter   a 100 KB HTML newsletter (tables, tracked links, a hidden preheader), N runs, p50/p99;
  corpus       every mail of the shared corpus and tests/mail/testdata, once each: total and worst;
  hostile      a 1,000-part message, a 200-deep nesting, a 5 MB HTML body: each one's time.

Usage: python bench/content.py [--runs 200] [--html-kb 100]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assmbl.settings")

import django  # noqa: E402

django.setup()

from bench._common import percentile, realistic_mail  # noqa: E402
from mail.content import content_extract  # noqa: E402
from mail.parsing import parse_mail  # noqa: E402
from tests.mail.corpus import real_mails  # noqa: E402

ARTICLE = (
    '<tr><td style="padding:16px 24px;font-family:Arial,sans-serif;font-size:15px;color:#333333">'
    '<h2 style="margin:0 0 8px;font-size:20px">Story {i}: what changed in the garden this week</h2>'
    "<p>Spring planting is under way across the country. Gardeners report early tomatoes, "
    "late frosts in the north and a run on seed potatoes. Here is what to do next, step by step.</p>"
    "<ul><li>Sow tomatoes indoors</li><li>Prune the roses</li><li>Mulch the beds</li></ul>"
    '<p><a href="https://click.news.example/ls/click?upn=u001.{i}-abcdefghijklmnop&amp;c=42" '
    'style="color:#1a73e8">Read more</a> · <a href="https://news.example/s/{i}">news.example/s/{i}</a></p>'
    "</td></tr>"
)


def newsletter(kb: int) -> bytes:
    head = (
        "<!DOCTYPE html><html><head><style>.preheader{display:none!important}"
        "@media (max-width:600px){.col{width:100%!important}}</style></head>"
        '<body style="margin:0;background:#f4f4f4"><span class="preheader">This week: seeds, roses, '
        + "&zwnj;&nbsp;" * 60
        + '</span><table width="100%" bgcolor="#f4f4f4"><tr><td><table width="600" bgcolor="#ffffff">'
    )
    tail = (
        '<tr><td style="font-size:12px;color:#999999">You subscribed at news.example. '
        '<a href="https://news.example/unsubscribe?u=1">Unsubscribe</a></td></tr></table></td></tr></table>'
        '<img src="https://open.news.example/o.gif?u=1" width="1" height="1"></body></html>'
    )
    parts, i = [head], 0
    while sum(map(len, parts)) < kb * 1024 - len(tail):
        parts.append(ARTICLE.format(i=i))
        i += 1
    html = "".join(parts) + tail
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["To"], msg["Subject"] = "News <news@news.example>", "agent@agents.example", "This week"
    msg.set_content("This week in gardening (view in a browser).")
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def extract(raw: bytes) -> float:
    parsed = parse_mail(raw)
    start = time.perf_counter()
    content_extract(
        raw=raw,
        subject=parsed.subject,
        from_header=parsed.from_header,
        sender_verified=False,
        received_at=None,
        attachments=parsed.attachments,
        trusted_domains=("example.com",),
    )
    return time.perf_counter() - start


def html_only(raw: bytes) -> bytes:
    """The newsletter without its text part, so the HTML is what is rendered for Text."""
    msg = EmailMessage(policy=SMTP)
    msg["From"], msg["Subject"] = "News <news@news.example>", "This week"
    html = raw.split(b"<!DOCTYPE html>", 1)[1].decode("utf-8", "replace")
    msg.set_content("<!DOCTYPE html>" + html, subtype="html")
    return msg.as_bytes()


def hostile() -> dict[str, float]:
    many = EmailMessage(policy=SMTP)
    many["From"], many["Subject"] = "a@example.com", "parts"
    many.set_content("body")
    for i in range(999):
        many.add_attachment(f"part {i}".encode(), maintype="application", subtype="octet-stream", filename=f"p{i}.bin")
    deep = b"From: a@example.com\r\nSubject: deep\r\n"
    for level in range(200):
        deep += f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
    deep += b"Content-Type: text/plain\r\n\r\ndeep body\r\n"
    big = EmailMessage(policy=SMTP)
    big["From"], big["Subject"] = "a@example.com", "big"
    big.set_content(
        "<html><body>"
        + "<div><p>word <b>bold</b> <a href='https://x.example/'>link</a></p></div>" * 80_000
        + "</body></html>",
        subtype="html",
    )
    return {
        name: round(extract(raw) * 1000, 1)
        for name, raw in (("parts_1000_ms", many.as_bytes()), ("nested_200_ms", deep), ("html_5mb_ms", big.as_bytes()))
    }


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--runs", type=int, default=200)
    args.add_argument("--html-kb", type=int, default=100)
    opts = args.parse_args()
    raw = newsletter(opts.html_kb)
    result: dict[str, object] = {"newsletter_bytes": len(raw)}
    for name, mail in (("newsletter", raw), ("newsletter_html_only", html_only(raw))):
        extract(mail)
        times = sorted(extract(mail) * 1000 for _ in range(opts.runs))
        result[f"{name}_p50_ms"] = round(percentile(times, 50), 2)
        result[f"{name}_p99_ms"] = round(percentile(times, 99), 2)
    typical = sorted(extract(realistic_mail(i, "agent@agents.example")) * 1000 for i in range(opts.runs))
    result["typical_5kb_p50_ms"] = round(percentile(typical, 50), 2)
    result["typical_5kb_p99_ms"] = round(percentile(typical, 99), 2)
    mails = real_mails()
    corpus = [extract(mail) for mail in mails]
    result.update(
        corpus_mails=len(mails),
        corpus_total_s=round(sum(corpus), 3),
        corpus_worst_ms=round(max(corpus, default=0) * 1000, 1),
    )
    result.update(hostile())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
