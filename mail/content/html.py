"""HTML as a reader sees it: what the sender hid is taken out of the parsed DOM first,
then the rest is rendered to text (inscriptis, on the same lxml tree) and sanitised (nh3).

Hiding is judged from inline styles, ``hidden`` attributes, ``<font color>``,
``bgcolor`` and the simple class/id rules of ``<style>`` blocks (``.x {…}``,
``p.x``, ``#y``; rules inside ``@media`` and selectors with combinators are ignored,
since they apply only on some screens or need a full cascade). Comments go at parse time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
import nh3
from inscriptis import Inscriptis
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig

from mail.content.text import INVISIBLE, clean_text

MAX_LINKS = 50
MAX_RENDER_ELEMENTS = 5_000
MAX_TABLE_ROWS = 300
_DROP_TAGS = ("head", "script", "style", "title", "template", "noscript", "object", "embed", "iframe", "svg")
_QUOTE_XPATH = (
    "//div[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]"
    " | //blockquote[@type='cite']"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' moz-cite-prefix ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' yahoo_quoted ')]"
    " | //div[contains(concat(' ', normalize-space(@class), ' '), ' protonmail_quote ')]"
    " | //div[@id='divRplyFwdMsg'] | //div[@id='appendonsend']"
)
# Outlook's reply header and what follows it are the quoted message, not only the marker.
_QUOTE_CUTS_FOLLOWING = {"divRplyFwdMsg", "appendonsend"}

_PARSER = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, recover=True)
_CONFIG = ParserConfig(css=CSS_PROFILES["relaxed"], display_links=False, table_cell_separator=" | ")

_SANITIZE_TAGS = set(nh3.ALLOWED_TAGS) | {
    "img",
    "center",
    "font",
    "span",
    "div",
    "table",
    "tbody",
    "thead",
    "tr",
    "td",
    "th",
}
_SANITIZE_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "width", "height"},
    "font": {"color"},
    "*": {"style", "align", "width"},
}
_CSS_URL = re.compile(r"url\s*\([^)]*\)?", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"@import|expression\s*\(", re.IGNORECASE)

_NAMED_COLOURS = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "green": (0, 128, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "whitesmoke": (245, 245, 245),
    "snow": (255, 250, 250),
    "ivory": (255, 255, 240),
    "navy": (0, 0, 128),
    "orange": (255, 165, 0),
    "purple": (128, 0, 128),
}
_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_TRANSPARENT = (-1, -1, -1)
_DECL = re.compile(r"([a-zA-Z-]+)\s*:\s*([^;]+)")
_LENGTH = re.compile(r"^(-?\d*\.?\d+)\s*(px|pt|em|rem|%|)?$")
_SIMPLE_SELECTOR = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)?((?:[.#][\w-]+)+)$")
_STRAY_INDENT = re.compile(r"^[ \t]+(?!\*\s|\d+\.\s|[a-z]\.\s)", re.MULTILINE)
_URLISH = re.compile(r"^(?:https?://)?(?:www\.)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?:[/:?#]\S*)?$", re.IGNORECASE)


@dataclass
class RenderedHtml:
    text: str = ""
    extracted: str | None = None  # the text without HTML quote blocks, None when there are none
    html: str = ""
    hidden: list[str] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    link_text_mismatch: bool = False


def _colour(value: str) -> tuple[int, int, int] | None:
    value = value.strip().lower().replace("!important", "").strip()
    if value in _NAMED_COLOURS:
        return _NAMED_COLOURS[value]
    if value == "transparent":
        return _TRANSPARENT
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in (3, 4):
            digits = "".join(ch * 2 for ch in digits[:3])
        if len(digits) in (6, 8) and all(ch in "0123456789abcdef" for ch in digits):
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
        return None
    match = re.match(r"rgba?\(\s*(\d+)%?[\s,]+(\d+)%?[\s,]+(\d+)%?(?:[\s,/]+([\d.]+)(%?))?\s*\)", value)
    if match:
        alpha = match.group(4)
        if alpha is not None and float(alpha) == 0:
            return _TRANSPARENT
        return int(match.group(1)), int(match.group(2)), int(match.group(3))
    return None


def _near(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) <= 12 for x, y in zip(a, b, strict=True))


def _length(value: str) -> float | None:
    match = _LENGTH.match(value.strip().lower().replace("!important", "").strip())
    return float(match.group(1)) if match else None


def _declarations(style: str) -> dict[str, str]:
    return {name.lower(): value.strip().lower() for name, value in _DECL.findall(style or "")}


def _hides(decls: dict[str, str]) -> bool:
    """Whether these declarations alone make an element's content invisible."""
    if not decls:
        return False
    get = decls.get
    if get("display", "").startswith("none") or get("visibility", "").startswith(("hidden", "collapse")):
        return True
    if "opacity" in decls and (opacity := _length(decls["opacity"])) is not None and opacity <= 0.01:
        return True
    if "font-size" in decls and (size := _length(decls["font-size"])) is not None and size < 1.5:
        return True
    if get("mso-hide", "").startswith("all"):
        return True
    if get("overflow", "").startswith("hidden"):
        for box in ("max-height", "height", "max-width", "width"):
            if box in decls and (extent := _length(decls[box])) is not None and extent <= 0:
                return True
    if get("position", "").startswith(("absolute", "fixed")):
        for side in ("left", "top", "right", "bottom"):
            if side in decls and (offset := _length(decls[side])) is not None and offset <= -500:
                return True
    if "text-indent" in decls and (indent := _length(decls["text-indent"])) is not None and indent <= -500:
        return True
    return "rect(0" in get("clip", "") or "scale(0)" in get("transform", "")


def _style_rules(root: lxml.html.HtmlElement) -> dict[str, dict[str, str]]:
    """Declarations of the simple top-level rules of the ``<style>`` blocks, by selector."""
    rules: dict[str, dict[str, str]] = {}
    for style in root.iter("style"):
        css = re.sub(r"/\*.*?\*/", "", style.text or "", flags=re.DOTALL)[:100_000]
        depth, start, selector = 0, 0, ""
        for index, char in enumerate(css):
            if char == "{":
                if depth == 0:
                    selector, start = css[start:index].strip(), index + 1
                depth += 1
            elif char == "}" and depth:
                depth -= 1
                if depth == 0:
                    if not selector.startswith("@"):
                        decls = _declarations(css[start:index])
                        for one in selector.split(","):
                            rules.setdefault(one.strip(), {}).update(decls)
                    start = index + 1
    return {sel: decls for sel, decls in rules.items() if _SIMPLE_SELECTOR.match(sel)}


def _matching_rules(element: lxml.html.HtmlElement, rules: dict[str, dict[str, str]]) -> dict[str, str]:
    if not rules:
        return {}
    classes = (element.get("class") or "").split()
    ident = element.get("id")
    found: dict[str, str] = {}
    for selector in [f".{c}" for c in classes] + ([f"#{ident}"] if ident else []):
        for candidate in (selector, f"{element.tag}{selector}"):
            if candidate in rules:
                found.update(rules[candidate])
    return found


def _text_of(element: lxml.html.HtmlElement) -> str:
    try:
        text: str = element.text_content()
        return text
    except ValueError:
        return ""


Colour = tuple[int, int, int]


def _paint(
    element: lxml.html.HtmlElement, decls: dict[str, str], colour: Colour, background: Colour | None
) -> tuple[Colour, Colour | None]:
    """The text colour and background colour inside ``element`` (None: an image, unknown)."""
    if element.get("background") or "url(" in decls.get("background", "") or "background-image" in decls:
        background = None  # text on an image: its colour cannot be judged
    for source in (element.get("bgcolor"), decls.get("background-color"), decls.get("background")):
        if source and (parsed := _colour(source.split()[0] if source.split() else source)) and parsed != _TRANSPARENT:
            background = parsed
    for source in (element.get("color") if element.tag == "font" else None, decls.get("color")):
        if source and (parsed := _colour(source)):
            colour = parsed
    return colour, background


def _prune_hidden(root: lxml.html.HtmlElement, hidden: list[str]) -> None:
    """Remove what a reader cannot see; record its text in ``hidden``."""
    rules = _style_rules(root)
    for tag in _DROP_TAGS:
        for element in list(root.iter(tag)):
            if element.getparent() is not None:
                element.drop_tree()
    body = root.find("body")
    # (element, text colour, background colour, whether the two match)
    stack: list[tuple[lxml.html.HtmlElement, Colour, Colour | None, bool]] = [
        (body if body is not None else root, _BLACK, _WHITE, False)
    ]
    while stack:
        element, colour, background, invisible = stack.pop()
        if not isinstance(element.tag, str):
            continue
        style = element.get("style")
        decls = _declarations(style) if style else {}
        if rules and (matched := _matching_rules(element, rules)):
            decls = {**matched, **decls}
        if element.get("hidden") is not None or _hides(decls):
            hidden.append(_text_of(element))
            if element.getparent() is not None:
                element.drop_tree()
            continue
        if decls or element.get("bgcolor") or element.get("background") or element.tag == "font":
            colour, background = _paint(element, decls, colour, background)
            invisible = colour == _TRANSPARENT or (background is not None and _near(colour, background))
        if invisible:
            # Only this element's own text is unseen: a child may set a visible colour.
            if element.text and element.text.strip():
                hidden.append(element.text)
                element.text = None
            for child in element:
                if child.tail and child.tail.strip():
                    hidden.append(child.tail)
                    child.tail = None
        for child in reversed(element):
            stack.append((child, colour, background, invisible))


def _host(url: str) -> str:
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return ""
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _same_site(shown: str, target: str) -> bool:
    """The target is the shown host or one of its subdomains (the same owner)."""
    return target == shown or target.endswith("." + shown)


def _collect_links(root: lxml.html.HtmlElement, rendered: RenderedHtml) -> None:
    """Links in order, deduplicated by URL; each text link is shown as ``text (url)``."""
    seen: set[str] = set()
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href.lower().startswith(("http://", "https://")):
            continue
        text = " ".join(_text_of(anchor).split())
        shown = _URLISH.match(text)
        if shown and not _same_site(_host(shown.group(0)), _host(href)):
            rendered.link_text_mismatch = True
        if not text:
            text = " ".join(" ".join(img.get("alt") or "" for img in anchor.iter("img")).split())
        elif text.rstrip("/") not in (href.rstrip("/"), href.split("://", 1)[1].rstrip("/")):
            anchor.tail = f" ({href})" + (anchor.tail or "")
        if href not in seen and len(rendered.links) < MAX_LINKS:
            seen.add(href)
            rendered.links.append({"url": href, "text": INVISIBLE.sub("", text)[:500].strip()})


def _unlayout(root: lxml.html.HtmlElement) -> None:
    """Layout tables (role=presentation, a table that holds tables, rows of one cell)
    become plain blocks: they are how mail is positioned, not data, and laying them out
    as tables is most of the renderer's time on a newsletter. A table of more than
    MAX_TABLE_ROWS rows becomes lines of cells: the renderer's table layout costs about
    a quarter of a millisecond a row."""
    for table in list(root.iter("table")):
        rows = table.xpath("./tr | ./tbody/tr | ./thead/tr | ./tfoot/tr")
        layout = (
            table.get("role") == "presentation"
            or table.find(".//table") is not None
            or all(len(row.xpath("./td | ./th")) <= 1 for row in rows)
        )
        if not layout and len(rows) <= MAX_TABLE_ROWS:
            continue
        table.tag = "div"
        for section in table.xpath("./tbody | ./thead | ./tfoot"):
            section.tag = "div"
        for row in rows:
            row.tag = "div"
            cells = row.xpath("./td | ./th")
            for index, cell in enumerate(cells):
                cell.tag = "div" if layout else "span"
                if not layout and index + 1 < len(cells):
                    cell.tail = " | " + (cell.tail or "")


def _truncate(root: lxml.html.HtmlElement) -> None:
    """Keep the first MAX_RENDER_ELEMENTS elements in document order: the renderer's
    time grows with them, and a hostile body can pack many into its 256 KB."""
    elements = list(root.iter())
    for element in elements[MAX_RENDER_ELEMENTS:]:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)


def _render(root: lxml.html.HtmlElement) -> str:
    text = Inscriptis(root, _CONFIG).get_text()
    # Indentation from whitespace between blocks means nothing; a list item's does.
    return clean_text(_STRAY_INDENT.sub("", text))


def _sanitize_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "src" and not value.lower().startswith(("cid:", "data:")):
        return None  # a remote image is a read receipt
    if attribute == "style":
        return _CSS_URL.sub("none", _CSS_IMPORT.sub("", value))
    return value


def sanitize_html(html: str) -> str:
    """Scripts, event handlers, forms, iframes, javascript: URLs and remote loads removed."""
    return nh3.clean(
        html,
        tags=_SANITIZE_TAGS,
        attributes=_SANITIZE_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_sanitize_attribute,
    )


def _parse(html: str) -> lxml.html.HtmlElement | None:
    if not html.strip():
        return None
    try:
        return lxml.html.document_fromstring(html, parser=_PARSER)
    except (lxml.etree.ParserError, ValueError):
        return None


def _strip_quotes(root: lxml.html.HtmlElement, *, forward: bool) -> bool:
    """Remove quote blocks of the reply clients in place; whether any was found."""
    found = False
    for element in root.xpath(_QUOTE_XPATH):
        if element.getparent() is None:
            continue
        if forward and "Forwarded message" in _text_of(element)[:400]:
            continue
        found = True
        if element.get("id") in _QUOTE_CUTS_FOLLOWING:
            for sibling in list(element.itersiblings()):
                sibling.drop_tree()
        element.drop_tree()
    return found


def html_render(html: str, *, forward: bool = False, with_text: bool = True) -> RenderedHtml:
    """Text, quote-free text, sanitised HTML, links and hidden text of an HTML body.
    ``with_text=False`` skips the rendering to text (the costliest step) when the
    message's text part will be its Text."""
    rendered = RenderedHtml()
    root = _parse(html)
    if root is None:
        return rendered
    _prune_hidden(root, rendered.hidden)
    rendered.hidden = [clean_text(chunk) for chunk in rendered.hidden if chunk and chunk.strip()]
    rendered.hidden = [chunk for chunk in rendered.hidden if chunk]
    rendered.html = sanitize_html(lxml.html.tostring(root, encoding="unicode"))
    _collect_links(root, rendered)
    if not with_text:
        return rendered
    _truncate(root)
    _unlayout(root)
    rendered.text = _render(root)
    if root.xpath(_QUOTE_XPATH):
        if _strip_quotes(root, forward=forward):
            rendered.extracted = _render(root)
    return rendered
