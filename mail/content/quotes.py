"""What a reply adds: quoted history and signatures cut from plain text with
mail-parser-reply (its headers "On … wrote:", "Am … schrieb …:", Outlook's "From: … Sent:",
and signature openers, in every language it knows), then ``>`` lines and mobile
footers. A forward keeps what it forwards. docs/decisions/0007-content-libraries.md says
why this library."""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES

from mail.content.text import clean_text

_READER = EmailReplyParser(languages=list(MAIL_LANGUAGES))
# Longer text is cut as is: the library's signature pattern scans to the end of the text.
MAX_QUOTE_SCAN_CHARS = 64_000
# A signature opener ("Thanks,", "Best regards") further up than this many lines from the
# end is more likely prose than a sign-off: the cut is only taken below it.
_MAX_SIGNATURE_LINES = 12

_FORWARD_SUBJECT = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:fwd?|fw|wg|tr|rv|enc|vs|doorst|i)\s*:", re.IGNORECASE)
_FORWARD_MARKERS = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Forwarded Message|Original Message|Weitergeleitete Nachricht|"
    r"Message transf[ée]r[ée]|Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht)\s*-{2,}"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:|D[ée]but du message r[ée]exp[ée]di[ée]\s*:)",
    re.IGNORECASE | re.MULTILINE,
)
_SENDER_FIELD = re.compile(r"^[\s>*]*(?:From|Von|De|Da|Van|Od|Fra|Från|Från|差出人|发件人|寄件者|보낸 사람)\s*:", re.MULTILINE)
_QUOTED_LINE = re.compile(r"^[ \t]*>")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:Sent from my \S.*|Sent from (?:Mail|Outlook) for \S.*|Get Outlook for \S.*|Sent via \S.*mobile.*"
    r"|Von meinem \S.* gesendet|Gesendet von meinem \S.*|Gesendet mit der \S.*App.*|Envoy[ée] de mon \S.*"
    r"|Envoy[ée] depuis mon \S.*|Enviado desde mi \S.*|Enviado do meu \S.*|Inviato da(?:l mio)? \S.*)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def is_forward(*, subject: str, text: str) -> bool:
    return bool(_FORWARD_SUBJECT.match(subject or "")) or bool(_FORWARD_MARKERS.search(text[:MAX_QUOTE_SCAN_CHARS]))


def _library_cut(text: str) -> str | None:
    """The first reply's body as the library splits it, or None when it finds neither a
    quoted message nor a signature we trust."""
    message = _READER.read(text[:MAX_QUOTE_SCAN_CHARS])
    if not message.replies:
        return None
    first = message.replies[0]
    if len(message.replies) > 1:
        header = message.replies[1].headers or ""
        # Two header-like lines ("Date:", "To:") also open receipts and forms; a quoted
        # message's header block names its sender.
        if "\n" in header.strip() and not _SENDER_FIELD.search(header):
            return None
    body = first.content.replace(first.headers or "", "", 1) if first.headers else first.content
    signature = first.signatures
    if signature:
        tail_lines = [line for line in signature.splitlines() if line.strip()]
        if len(tail_lines) <= _MAX_SIGNATURE_LINES or signature.lstrip().startswith(("--", "__")):
            body = body.replace(signature, "")
        else:
            signature = ""
    if len(message.replies) == 1 and not signature:
        return None
    return body


def reply_extract(text: str, *, subject: str = "") -> str:
    """``text`` without quoted history, signature or mobile footer; ``text`` itself when
    there is nothing to cut or the mail is a forward."""
    if not text or is_forward(subject=subject, text=text):
        return text
    cut = _library_cut(text)
    body = cut if cut is not None else text
    lines = [line for line in body.splitlines() if not _QUOTED_LINE.match(line)]
    stripped = _MOBILE_FOOTER.sub("", "\n".join(lines))
    if cut is None and len(lines) == len(body.splitlines()) and stripped == "\n".join(lines):
        return text
    return clean_text(stripped)
