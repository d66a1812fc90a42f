"""Normalise what a document says into what the store keeps.

Titles end up in Subject headers, summaries inside the email, URLs in links and in the
canonical-URL key that makes the same news from two sources one item, so each is cleaned here
once, the same way for feeds and listing pages.
"""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import dateparser
import lxml.html
from lxml import etree

from digest.render.sanitise import clean_summary, xml_text
from digest.urls import safe_url

TITLE_MAX = 300
SUMMARY_INPUT_MAX = 200_000  # bytes of HTML read at all: hostile items can be megabytes
SUMMARY_HTML_MAX = 16_000
SUMMARY_TEXT_MAX = 1_000
URL_MAX = 2_000  # a longer "URL" is junk, and PostgreSQL's btree index on it has a size limit

_WS = re.compile(r"\s+")
# Bidi overrides/isolates can disguise a Subject; line/paragraph separators break headers.
_INVISIBLE = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF, 0x00AD], None)
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")

ALLOWED_SCHEMES = frozenset({"http", "https"})
_BLOCK_TAGS = {"p", "br", "li", "blockquote", "figure", "figcaption", "h2", "h3", "h4", "pre"}
_PIXEL_SRC = re.compile(
    r"feedburner\.com/~r/|/~ff/|feedsportal|doubleclick|pixel|beacon|/track(ing)?[/?.]"
    r"|stats\.wordpress\.com|/open\.(gif|png)|1x1|spacer\.gif",
    re.IGNORECASE,
)

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid",
        "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp",
        "hsctatracking", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "wickedid",
        "ck_subscriber_id", "ref_src", "ref_url", "cmpid", "s_cid", "at_medium",
        "at_campaign", "ncid", "sr_share", "spm",
    }
)  # fmt: skip


def one_line(text: str) -> str:
    """Plain text on one line: control and invisible characters gone, whitespace collapsed."""
    text = text.translate(_INVISIBLE)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return _WS.sub(" ", text).strip()


def _shorten(text: str, limit: int) -> str:
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


_TEXT_BREAKS = _BLOCK_TAGS | {
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
    return _shorten(one_line(text), TITLE_MAX)


def absolute_url(href: str | None, base: str | None, *, local_ok: bool = False) -> str | None:
    """`href` resolved against `base`; None unless it is http(s) (file: too when `local_ok`)."""
    if not href:
        return None
    # Browsers drop tabs and newlines anywhere in a URL and spaces around it.
    href = re.sub(r"[\t\n\r]", "", href).strip()
    if not href or href.startswith("#"):
        return None
    try:
        url = urljoin(base or "", href)
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    allowed = scheme in ALLOWED_SCHEMES and bool(parts.netloc)
    if not allowed and not (local_ok and scheme == "file"):
        return None
    if len(url) > URL_MAX:
        return None
    return url.replace(" ", "%20")


def canonical_url(url: str | None) -> str | None:
    """The key that makes two spellings of one page equal.

    https for http, lower-case host, no default port, no fragment, no tracking parameters
    (utm_* and click ids), the other parameters sorted, no trailing slash except the root.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme == "http":
        scheme = "https"
    host = (parts.hostname or "").lower().rstrip(".")
    if port and not (port in (80, 443) and scheme == "https"):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if not key.lower().startswith("utm_") and key.lower() not in TRACKING_PARAMS
    ]
    canonical = urlunsplit((scheme, host, path, urlencode(sorted(query)), ""))
    return canonical[:URL_MAX]


def _is_pixel(img: Any) -> bool:
    for dimension in ("width", "height"):
        value = (img.get(dimension) or "").strip().rstrip("px")
        if value.isdigit() and int(value) <= 2:
            return True
    return bool(_PIXEL_SRC.search(img.get("src") or ""))


def sanitise_summary(raw: str | None, base: str | None) -> tuple[str, str]:
    """(safe HTML, plain text) of an item's summary.

    The summary allow-list (digest.render.sanitise, nh3) keeps a few tags and attributes, so
    scripts, event handlers, styles, comments, SVG and MathML go; links are resolved against
    the page and every href/src is made a percent-encoded http(s) URL (mailto for links) or
    dropped. Tracking pixels are dropped, and the result is serialised by nh3 again, every
    attribute double-quoted. Oversized summaries are cut to plain text.
    """
    if not raw or not raw.strip():
        return "", ""
    raw = xml_text(raw[:SUMMARY_INPUT_MAX])  # lxml refuses what XML cannot hold

    def resolve(tag: str, url: str) -> str | None:
        if tag == "a" and (mailto := safe_url(url, schemes=frozenset({"mailto"}))):
            return mailto
        return safe_url(absolute_url(url, base))

    cleaned = clean_summary(raw, resolve)
    if not cleaned.strip():
        return "", ""
    try:
        root = lxml.html.fragment_fromstring(cleaned, create_parent="div")
    except (etree.ParserError, ValueError):
        text = _shorten(one_line(html_to_text(cleaned)), SUMMARY_TEXT_MAX)
        return (f"<p>{html.escape(text)}</p>" if text else ""), text
    for img in list(root.iter("img")):
        if not img.get("src") or _is_pixel(img):
            img.drop_tree()
    # lxml quotes attributes its own way (single quotes around a value holding '"'): the
    # stored form is nh3's, with every attribute double-quoted.
    body = clean_summary(
        html.escape(root.text or "", quote=False)
        + "".join(lxml.html.tostring(child, encoding="unicode") for child in root)
    ).strip()
    text_full = one_line(element_text(root))
    text = _shorten(text_full, SUMMARY_TEXT_MAX)
    if len(body) > SUMMARY_HTML_MAX:
        body = f"<p>{html.escape(text)}</p>"
    if not text and "<img" not in body:
        return "", ""
    return body, text


def to_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def store_time(value: datetime | None) -> datetime | None:
    """The naive UTC form every timestamp column holds."""
    return None if value is None else to_utc(value).replace(tzinfo=None)


_HAS_DIGIT = re.compile(r"\d")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+)?(Z|[+-]\d{2}:?\d{2})?$")
# A date inside a longer line ("12 February 2024 | Interview"): tried when the whole fails.
_DATE_INSIDE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}(?:st|nd|rd|th|er)?\.?\s+[^\W\d_]{3,12}\.?,?\s+\d{4}"
    r"|[^\W\d_]{3,12}\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}"
    r"|\d{1,2}[./-]\d{1,2}[./-]\d{4}"
    r"|\d{4}年\d{1,2}月\d{1,2}日"
)


def _primary_language(language: str | None) -> str | None:
    if not language:
        return None
    return language.replace("_", "-").split("-")[0].lower() or None


@lru_cache(maxsize=4096)
def parse_date(text: str | None, language: str | None = None) -> datetime | None:
    """A date as written on a page ("21 February 2024", "21 février 2024", "21/02/2024",
    ISO 8601) in aware UTC, or None. Needs a year: a guessed year would misdate old items.

    The source's language is tried first; numeric dates are read day first except for
    American English ("en-US"). A date without a time is midnight UTC.
    """
    if not text:
        return None
    text = one_line(text)[:80]
    if not _HAS_DIGIT.search(text):
        return None
    if _ISO_DATE.match(text):
        try:
            return to_utc(datetime.fromisoformat(text))
        except ValueError:
            pass
    order = "MDY" if (language or "").lower().replace("_", "-") == "en-us" else "DMY"
    settings: Any = {
        "TIMEZONE": "UTC",
        "TO_TIMEZONE": "UTC",
        "RETURN_AS_TIMEZONE_AWARE": True,
        "DATE_ORDER": order,
        "PREFER_DAY_OF_MONTH": "first",
        "REQUIRE_PARTS": ["month", "year"],
    }
    primary = _primary_language(language)
    attempts: list[list[str] | None] = [[primary]] if primary else []
    attempts.append(None)
    candidates = [text] + [m.group(0) for m in _DATE_INSIDE.finditer(text) if m.group(0) != text]
    for candidate in candidates[:4]:
        for languages in attempts:
            try:
                parsed = dateparser.parse(candidate, languages=languages, settings=settings)
            except (ValueError, OverflowError, TypeError, LookupError):
                parsed = None
            if parsed is not None:
                return to_utc(parsed)
    return None
