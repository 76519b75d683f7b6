"""Attachments as text: PDF, DOCX, XLSX, PPTX and CSV through markitdown's converters
(as Markdown where the format has structure), HTML through the hidden-text-aware renderer,
text by its charset. The converter is chosen from the content type, or from the filename's
extension when the type says nothing (application/octet-stream); markitdown's own
content sniffing (magika) is not used, so what is converted is what the type names."""

from __future__ import annotations

import io

from markitdown import StreamInfo
from markitdown.converters import CsvConverter, DocxConverter, PdfConverter, PptxConverter, XlsxConverter

from assmbl import domain
from mail.content.html import html_render
from mail.content.text import clean_text, decode_bytes

MAX_TEXT_CHARS = 1_000_000


class UnsupportedAttachmentType(domain.Unsupported):
    """The attachment is of a type that has no text (an image, an archive, a binary)."""

    code = "unsupported_attachment_type"


class AttachmentTooLarge(domain.TooLarge):
    """The attachment is larger than the conversion limit."""

    code = "attachment_too_large"


_KINDS = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/plain": "text",
    "text/markdown": "text",
    "application/json": "text",
    "text/calendar": "text",
}
_EXTENSIONS = {
    "pdf": "pdf",
    "docx": "docx",
    "xlsx": "xlsx",
    "pptx": "pptx",
    "html": "html",
    "htm": "html",
    "csv": "csv",
    "txt": "text",
    "md": "text",
    "json": "text",
    "log": "text",
    "ics": "text",
}
_CONVERTERS = {
    "pdf": (PdfConverter, ".pdf", "application/pdf"),
    "docx": (DocxConverter, ".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xlsx": (XlsxConverter, ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "pptx": (PptxConverter, ".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
    "csv": (CsvConverter, ".csv", "text/csv"),
}


def attachment_kind(*, content_type: str, filename: str) -> str | None:
    """pdf, docx, xlsx, pptx, html, csv or text; None when there is no text to get."""
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype in _KINDS:
        return _KINDS[ctype]
    if ctype in ("", "application/octet-stream", "binary/octet-stream", "application/x-download"):
        extension = (filename or "").rpartition(".")[2].lower() if "." in (filename or "") else ""
        return _EXTENSIONS.get(extension)
    if ctype.startswith("text/"):
        return "text"
    return None


def attachment_text(*, data: bytes, content_type: str, filename: str, max_bytes: int) -> tuple[str, bool]:
    """The attachment's text and whether it was cut at MAX_TEXT_CHARS.

    Raises UnsupportedAttachmentType for a type without text, AttachmentTooLarge past
    ``max_bytes``; a file that its converter cannot read is unsupported too."""
    kind = attachment_kind(content_type=content_type, filename=filename)
    if kind is None:
        raise UnsupportedAttachmentType(f"no text can be taken from {content_type or 'this type'}")
    if len(data) > max_bytes:
        raise AttachmentTooLarge(f"the attachment is {len(data)} bytes; text is taken from at most {max_bytes}")
    charset = None
    if "charset=" in (content_type or "").lower():
        charset = content_type.lower().split("charset=", 1)[1].split(";", 1)[0].strip().strip('"')
    if kind == "text":
        text = clean_text(decode_bytes(data, charset))
    elif kind == "html":
        text = html_render(decode_bytes(data, charset)).text
    else:
        converter, extension, mimetype = _CONVERTERS[kind]
        stream_info = StreamInfo(mimetype=mimetype, extension=extension, filename=filename or None, charset=charset)
        try:
            result = converter().convert(io.BytesIO(data), stream_info)
        except Exception as exc:  # a broken or encrypted file: there is no text to give
            raise UnsupportedAttachmentType(f"the {kind.upper()} file could not be read: {type(exc).__name__}") from exc
        text = clean_text(result.markdown or "")
    truncated = len(text) > MAX_TEXT_CHARS
    return (text[:MAX_TEXT_CHARS], truncated)
