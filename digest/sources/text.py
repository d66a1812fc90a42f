"""Plain text from what a document says: one line, no invisible characters, titles.

Titles end up in Subject headers and every copy's HTML, so they are cleaned here once, the
same way for feeds and listing pages.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

import lxml.html
from lxml import etree

TITLE_MAX = 300

_WS = re.compile(r"\s+")
# Bidi overrides/isolates can disguise a Subject; line/paragraph separators break headers.
_INVISIBLE = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF, 0x00AD], None)
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
BLOCK_TAGS = frozenset(
    {"p", "br", "li", "blockquote", "figure", "figcaption", "h2", "h3", "h4", "pre"}
)


def one_line(text: str) -> str:
    """Plain text on one line: control and invisible characters gone, whitespace collapsed."""
    text = text.translate(_INVISIBLE)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return _WS.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def html_to_text(fragment: str) -> str:
    """Text of an HTML fragment: tags dropped, entities decoded (lxml does both)."""
    if "<" not in fragment and "&" not in fragment:
        return fragment
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return html.unescape(_TAG.sub(" ", fragment))
    return element_text(root)


_TEXT_BREAKS = BLOCK_TAGS | {
    "div", "h1", "h5", "h6", "td", "th", "tr", "ul", "ol", "dd", "dt", "section", "article",
    "header", "footer", "aside", "nav", "main", "table", "hr",
}  # fmt: skip
_NO_TEXT = {"script", "style", "template", "noscript"}


def element_text(element: Any) -> str:
    """An element's text as a reader sees it: blocks apart, scripts and comments left out."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        tag = node.tag.lower() if isinstance(node.tag, str) else None
        if tag is None or tag in _NO_TEXT:
            return
        block = tag in _TEXT_BREAKS
        if block:
            parts.append(" ")
        if node.text:
            parts.append(node.text)
        for child in node:
            walk(child)
            if child.tail:
                parts.append(child.tail)
        if block:
            parts.append(" ")

    walk(element)
    return "".join(parts)


def clean_title(raw: str | None, *, is_html: bool = True) -> str:
    """One line of plain text, at most TITLE_MAX characters ("" when there is none).

    Some feeds encode their titles twice (`&amp;amp;`, `&lt;b&gt;`): a second round of
    decoding is applied when entities or tags are still there after the first.
    """
    if not raw:
        return ""
    text = html_to_text(raw) if is_html else raw
    rounds = 2 if is_html else 0
    while rounds and (_ENTITY.search(text) or _TAG.search(text)):
        text, rounds = html_to_text(text), rounds - 1
    return shorten(one_line(text), TITLE_MAX)
