"""One-time codes: a 4–8 digit number (or "123 456", "123-456"), or a short run of capitals
and digits, in the same sentence as a word that names a code, in the Subject or the text.

Precision comes first: a number that is part of a date, a time, a price, a phone number,
an amount or a longer number, or that an order/invoice/ticket word is closer to, is not a code."""

from __future__ import annotations

import re

MAX_CODES = 5
_WINDOW = 160
_SCAN_CHARS = 20_000

# Words that name a code, by language. Matched case-insensitively on word boundaries.
_KEYWORDS = (
    r"code|codes|otp|one[- ]time (?:password|passcode|pin)|passcode|pass code|pin|verification|verify|"
    r"security code|login code|sign[- ]in code|2fa|mfa|two[- ]factor|token|"
    r"bestätigungscode|sicherheitscode|verifizierungscode|anmeldecode|einmalcode|einmalpasswort|"
    r"bestätigung|tan|"
    r"código|codigo|clave|contraseña temporal|verificación|"
    r"code de vérification|code de sécurité|code de confirmation|vérification|"
    r"codice|verifica|verificatiecode|inlogcode|kod|weryfikacyjny|verifieringskod|bekræftelseskode|"
    r"код|пароль"
)
# Scripts without spaces between words: these match inside a run of letters.
_KEYWORDS_CJK = r"認証コード|確認コード|ワンタイムパスワード|验证码|校验码|驗證碼|動態密碼|인증번호|인증 코드"
_KEYWORD = re.compile(rf"(?<![\w])(?:{_KEYWORDS})(?![\w])|{_KEYWORDS_CJK}", re.IGNORECASE)
# "Code" after these words names something else than a one-time code.
_NOT_ONE_TIME = re.compile(
    r"(?:bank|bic|swift|sort|zip|postal|post|area|country|error|status|exit|return|response|promo|promotional|"
    r"discount|coupon|voucher|gift|tax|product|hs|source|qr|bar|dress|reference|booking|tracking|airport|iata|"
    r"language|currency|colou?r|html|css|sample|example|rabatt|gutschein|postleit|bankleit)[\s/-]{0,3}$",
    re.IGNORECASE,
)
_URL = re.compile(r"\b(?:https?://|www\.)\S+|<[^<>\s]+@[^<>\s]+>|\S+@\S+\.\w+", re.IGNORECASE)
# Words that say a nearby number is something else.
_OTHER = re.compile(
    r"(?<![\w])(?:order|bestellung|commande|pedido|ordine|invoice|rechnung|factura|facture|ticket|case|"
    r"tracking|sendung|account|konto|customer|kunden|reference|ref|zip|postal|plz|phone|tel|telefon|fax|"
    r"mobile|call|hotline|room|flight|booking|reservation|confirmation number|no\.|nr\.|#)(?![\w])",
    re.IGNORECASE,
)
_CANDIDATE = re.compile(
    r"(?<![\w.,/:+#€$£¥=\[&-])"
    r"(\d{3}[ -]\d{3}|\d{4,8}|(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{2,5}-?[A-Z0-9]{2,5})"
    r"(?![\w/€$£¥%\]]|[.,:/-]\d|\s?[€$£¥%]|\s?(?:eur|usd|gbp|chf|kb|mb|gb|km|kg|am|pm|uhr|h)\b)",
    re.IGNORECASE,
)
_MONTHS = re.compile(
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|januar|februar|märz|mai|juni|juli|oktober|dezember|"
    r"janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|enero|febrero|marzo|"
    r"abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre)[a-z]*\.?\s*\d{0,2},?\s*$",
    re.IGNORECASE,
)
# Every candidate holds a digit (_CANDIDATE's three forms all require one): text without a
# digit has no code, and the code-word search, the costly part, is not run over it.
_DIGIT = re.compile(r"\d")
_SENTENCE_END = re.compile(r"[.!?。]\s|\n\s*\n")
# "Your code is:", a blank line, then the code alone on its line: one sentence.
_CODE_ALONE = re.compile(r"\n\s*\n(?=[ \t]*[A-Za-z0-9][A-Za-z0-9 -]{2,10}[ \t]*(?:\n|$))")


def _sentences(text: str) -> list[str]:
    """Sentences, where a line that holds only a code belongs to the line before it."""
    return [chunk for chunk in _SENTENCE_END.split(_CODE_ALONE.sub("\n", text)) if chunk.strip()]


def _keywords(text: str) -> list[re.Match[str]]:
    return [m for m in _KEYWORD.finditer(text) if not _NOT_ONE_TIME.search(text[max(0, m.start() - 24) : m.start()])]


def _is_code(token: str, before: str, after: str) -> bool:
    digits = token.replace(" ", "").replace("-", "")
    if digits.isdigit():
        if len(digits) < 4 or len(digits) > 8:
            return False
        if len(digits) == 4 and 1900 <= int(digits) <= 2099 and not re.search(r"(?:is|:)\s*$", before):
            return False  # a year, unless it is plainly given as the code
    elif not any(ch.isupper() for ch in token) or token.lower() == token:
        return False
    if _MONTHS.search(before[-20:]) or re.match(
        r"\s*(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", after, re.IGNORECASE
    ):
        return False
    if (
        re.search(r"[+(]\s*\d[\d\s()-]*$", before[-20:])
        or re.search(r"\d[\s-]$", before)
        or re.match(r"\s\d{2,}", after)
    ):
        return False  # one group of a phone number or a longer number
    keyword_before = max((m.end() for m in _keywords(before)), default=None)
    keyword_after = next(iter(_keywords(after[:60])), None)
    distances = []
    if keyword_before is not None and len(before) - keyword_before <= 80:
        distances.append(len(before) - keyword_before)
    if keyword_after is not None:
        distances.append(keyword_after.start())
    if not distances:
        return False
    # An order, invoice or phone word nearer than the code word names this number.
    other = max((m.end() for m in _OTHER.finditer(before)), default=None)
    return other is None or len(before) - other > min(distances)


def codes_find(*, subject: str, text: str) -> list[str]:
    """The one-time codes of a message, in order of appearance, Subject first, at most five."""
    found: list[str] = []
    for source in (subject or "", (text or "")[:_SCAN_CHARS]):
        # A number inside a link or an address is part of it.
        source = _URL.sub(" ", source)
        if not _DIGIT.search(source):
            continue
        for sentence in _sentences(source):
            if not _DIGIT.search(sentence) or not _keywords(sentence):
                continue
            for match in _CANDIDATE.finditer(sentence):
                token = match.group(1)
                if _KEYWORD.fullmatch(token):
                    continue
                # The words that decide are near: a window keeps a long sentence linear.
                before = sentence[max(0, match.start() - _WINDOW) : match.start()]
                if _is_code(token, before, sentence[match.end() : match.end() + _WINDOW]):
                    code = token.replace(" ", "") if token.replace(" ", "").isdigit() else token
                    if code not in found:
                        found.append(code)
                    if len(found) >= MAX_CODES:
                        return found
    return found[:MAX_CODES]
