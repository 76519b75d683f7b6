"""Safety flags. They inform the reader (and an agent's hold policy); they never drop mail.

- ``instructions_to_model``: a short rule set, each rule tested in tests/mail/test_content_safety.py.
- ``lookalike_sender``: the From domain mixes scripts with confusable letters (Unicode's
  confusables, via confusable-homoglyphs), or is one edit, or one homoglyph swap, away from
  a domain the agent trusts without being it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

from confusable_homoglyphs import confusables

HIDDEN_TEXT = "hidden_text"
INSTRUCTIONS_TO_MODEL = "instructions_to_model"
LINK_TEXT_MISMATCH = "link_text_mismatch"
LOOKALIKE_SENDER = "lookalike_sender"
FLAG_ORDER = (HIDDEN_TEXT, INSTRUCTIONS_TO_MODEL, LINK_TEXT_MISMATCH, LOOKALIKE_SENDER)

_SCAN_CHARS = 100_000
_AI = r"(?:ai|a\.i\.|artificial intelligence|llm|large language model|language model|chat ?bot|ai agent|ai assistant|assistant|gpt|chatgpt|claude|gemini|copilot)"

# name → pattern; each is a way mail speaks to the model that reads it rather than to a person.
INSTRUCTION_RULES: dict[str, re.Pattern[str]] = {
    "ignore_instructions": re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|preceding|"
        r"all|any|your|the|system|original)\b[^.\n]{0,30}?\b(?:instructions?|prompts?|rules|directives|guidelines|"
        r"context|programming)\b"
        r"|\bignoriere\b[^.\n]{0,40}\b(?:anweisungen|instruktionen|regeln)\b"
        r"|\bignore[zr]?\b[^.\n]{0,40}\binstructions\b[^.\n]{0,20}\b(?:pr[ée]c[ée]dentes|ant[ée]rieures)\b"
        r"|\bignora\b[^.\n]{0,40}\binstrucciones\b",
        re.IGNORECASE,
    ),
    "addresses_model": re.compile(
        rf"(?:^|[.!?:]\s+|\n)\s*(?:(?:dear|hey|hi|hello|attention|note to|message to|instructions? for|to)\s+(?:the\s+|any\s+|all\s+)?"
        rf"{_AI}s?\s*[,:!]|(?:ai agent|ai assistant|assistant|llm)\s*,\s)"
        rf"|\bif you are an? {_AI}\b|\bas an? {_AI}\b[^.\n]{{0,20}}\byou (?:must|should|will)\b"
        rf"|\b{_AI}s? (?:reading|processing|summari[sz]ing) this\b|\byou are now\b[^.\n]{{0,30}}\b(?:mode|assistant|ai|dan)\b"
        rf"|\bnew instructions?\s*:",
        re.IGNORECASE,
    ),
    "reveal_prompt": re.compile(
        r"\b(?:reveal|print|show|repeat|output|display|tell me|share|leak|dump|what (?:is|are))\b[^.\n]{0,40}?"
        r"\b(?:system prompt|system message|initial (?:prompt|instructions)|hidden instructions|your (?:instructions|prompt|rules)"
        r"|developer message|api keys?|access tokens?)\b",
        re.IGNORECASE,
    ),
    "forward_mail": re.compile(
        r"\b(?:forward|send|email|e-mail|transfer|copy|leite)\b[^.\n]{0,40}?\b(?:all|every|each|entire|whole|other|previous|recent|"
        r"last \d+|the contents of)\b[^.\n]{0,30}?\b(?:e-?mails?|messages|mails?|inbox|correspondence|conversations|threads|"
        r"attachments|password reset|verification codes?|codes|nachrichten)\b"
        r"|\bauto-?forward\b|\bset up (?:a )?forwarding rule\b",
        re.IGNORECASE,
    ),
}


def instruction_rules_matched(text: str) -> list[str]:
    """The names of the rules that ``text`` matches."""
    text = text[:_SCAN_CHARS]
    return [name for name, pattern in INSTRUCTION_RULES.items() if pattern.search(text)]


def _edit_distance_one(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one insertion, deletion, substitution or swap apart."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    for i in range(len(long)):
        if long[:i] + long[i + 1 :] == short:
            return True
    return False


@functools.lru_cache(maxsize=4096)
def _latin(char: str) -> str:
    if char.isascii():
        return char
    found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True) or []
    for entry in found:
        for glyph in entry.get("homoglyphs", []):
            look_alike: str = glyph["c"]
            if look_alike.isascii():
                return look_alike.lower()
    return char


_ASCII_LOOKALIKES = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"), ("|", "l"))


def _skeleton(domain: str) -> str:
    text = "".join(_latin(ch) for ch in unicodedata.normalize("NFKC", domain).lower())
    for seen, means in _ASCII_LOOKALIKES:
        text = text.replace(seen, means)
    return text


def _unicode_domain(domain: str) -> str:
    domain = domain.strip().strip(".").lower()
    labels = []
    for label in domain.split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(label)
    return ".".join(labels)


def lookalike_sender(*, address: str, trusted_domains: Sequence[str]) -> bool:
    domain = _unicode_domain(address.rpartition("@")[2])
    if not domain:
        return False
    trusted = [_unicode_domain(t) for t in trusted_domains if t]
    if any(domain == t or domain.endswith("." + t) for t in trusted):
        return False
    if not domain.isascii() and any(confusables.is_dangerous(label) for label in domain.split(".") if label):
        return True
    skeleton = _skeleton(domain)
    return any(skeleton == _skeleton(t) or _edit_distance_one(domain, t) for t in trusted)
