"""Build real MIME bytes for tests with the stdlib, as a mail client would."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import make_msgid


def build_mail(
    *,
    to: str | list[str],
    sender: str = "Alice Example <alice@example.com>",
    subject: str = "Hello",
    body: str = "Hi there",
    html: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    # policy.SMTP: CRLF line endings, as mail is on the wire.
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="example.com")
    for name, value in (headers or {}).items():
        if name.lower() == "message-id":
            del msg["Message-ID"]
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments or []:
        maintype, subtype = content_type.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()
