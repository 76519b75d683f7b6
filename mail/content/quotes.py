"""What a reply adds: quoted history and signatures cut from plain text with
mail-parser-reply (its headers "On … wrote:", "Am … schrieb …:", Outlook's "From: … Sent:",
and signature openers, in every language it knows), then ``>`` lines and mobile
footers. A forward keeps what it forwards. docs/decisions/content-libraries.md says
why this library."""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage as ReplyMessage

from mail.content.text import clean_text

_READER = EmailReplyParser(languages=list(MAIL_LANGUAGES))
# The library's own signature pattern, for text that quotes nothing.
_SIGNATURE = ReplyMessage(text="", languages=list(MAIL_LANGUAGES)).SIGNATURE_REGEX
# The library scans every line with every language's header patterns (tens of ms on a
# newsletter): only this much of the text is given to it, and only when a line looks like
# the start of a quoted message; otherwise only the tail is searched for a signature.
MAX_QUOTE_SCAN_CHARS = 16_000
_SIGNATURE_TAIL_CHARS = 2_000
_HEADER_HINT = re.compile(
    r"^[\s>*]*(?:From|Von|De|Da|Van|Od|Fra|Från|差出人|发件人|寄件者|보낸 사람)\s*:"
    r"|wrote|schrieb|[ée]crit|escribi[óo]|scritto|schreef|napsal|napisa[łl]|skrev|写道|書き|작성|Original Message",
    re.IGNORECASE | re.MULTILINE,
)
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
_SENDER_FIELD = re.compile(
    r"^[\s>*]*(?:From|Von|De|Da|Van|Od|Fra|Från|差出人|发件人|寄件者|보낸 사람)\s*:", re.MULTILINE
)
_QUOTED_LINE = re.compile(r"^[ \t]*>")
# "Bob wrote:" right above a quoted block belongs to the quote.
_ATTRIBUTION = re.compile(
    r"(?:wrote|schrieb|a [ée]crit|escribi[óo]|ha scritto|schreef|skrev|napsal|napisa[łl])\s*:\s*$", re.IGNORECASE
)
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:Sent from my \S.*|Sent from (?:Mail|Outlook) for \S.*|Get Outlook for \S.*|Sent via \S.*mobile.*"
    r"|Von meinem \S.* gesendet|Gesendet von meinem \S.*|Gesendet mit der \S.*App.*|Envoy[ée] de mon \S.*"
    r"|Envoy[ée] depuis mon \S.*|Enviado desde mi \S.*|Enviado do meu \S.*|Inviato da(?:l mio)? \S.*)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def is_forward(*, subject: str, text: str) -> bool:
    return bool(_FORWARD_SUBJECT.match(subject or "")) or bool(_FORWARD_MARKERS.search(text[:MAX_QUOTE_SCAN_CHARS]))


def _trusted_signature(signature: str) -> bool:
    lines = [line for line in signature.splitlines() if line.strip()]
    return len(lines) <= _MAX_SIGNATURE_LINES or signature.lstrip().startswith(("--", "__"))


def _signature_cut(text: str) -> str | None:
    start = max(0, len(text) - _SIGNATURE_TAIL_CHARS)
    match = _SIGNATURE.search(text, text.rfind("\n", 0, start) + 1 if start else 0)
    if match is None or not match.group().strip() or not _trusted_signature(match.group()):
        return None
    return text[: match.start()]


def _library_cut(text: str) -> str | None:
    """The first reply's body as the library splits it, or None when it finds neither a
    quoted message nor a signature we trust."""
    window = text[:MAX_QUOTE_SCAN_CHARS]
    if not _HEADER_HINT.search(window):
        return _signature_cut(text)
    message = _READER.read(window)
    if not message.replies:
        return None
    first = message.replies[0]
    if len(message.replies) > 1:
        header = message.replies[1].headers or ""
        # Two header-like lines ("Date:", "To:") also open receipts and forms; a quoted
        # message's header block names its sender.
        if "\n" in header.strip() and not _SENDER_FIELD.search(header):
            return _signature_cut(text)
    elif len(text) > len(window):
        return _signature_cut(text)  # no quoted message in the window: the rest is this mail's
    body: str = first.content.replace(first.headers or "", "", 1) if first.headers else first.content
    signature = first.signatures if first.signatures and _trusted_signature(first.signatures) else ""
    if signature:
        body = body.replace(signature, "")
    if len(message.replies) == 1 and not signature:
        return None
    return body


def _quote_follows(lines: list[str]) -> list[bool]:
    """For each line, whether the next line after it that is not blank is quoted (one
    pass from the end, so a mail of many attribution lines and blank lines stays linear)."""
    follows = [False] * len(lines)
    upcoming = False
    for index in range(len(lines) - 1, -1, -1):
        follows[index] = upcoming
        if lines[index].strip():
            upcoming = bool(_QUOTED_LINE.match(lines[index]))
    return follows


def reply_extract(text: str, *, subject: str = "") -> str:
    """``text`` without quoted history, signature or mobile footer; ``text`` itself when
    there is nothing to cut or the mail is a forward."""
    if not text or is_forward(subject=subject, text=text):
        return text
    cut = _library_cut(text)
    body = cut if cut is not None else text
    source = body.splitlines()
    follows = _quote_follows(source)
    lines = [
        line
        for index, line in enumerate(source)
        if not _QUOTED_LINE.match(line) and not (follows[index] and _ATTRIBUTION.search(line))
    ]
    stripped = _MOBILE_FOOTER.sub("", "\n".join(lines))
    if cut is None and len(lines) == len(source) and stripped == "\n".join(lines):
        return text
    return clean_text(stripped)
