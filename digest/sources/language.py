"""A source's language, as the source says it: the feed's or page's declared language, else
its URL (a path segment "/fr/", a "lang=es" query, a "fr." host).

Only a well-formed language subtag known to Babel is taken: a document's bytes are hostile,
and what is stored here picks the edition its items go to.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from babel import Locale, UnknownLocaleError

_HEAD = 8192  # the declaration is at the top; never scan a whole document
_DECLARED = (
    re.compile(rb"<html\b[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)", re.I),
    re.compile(
        rb"<(?:rss|feed|rdf:RDF|channel)\b[^>]*?\bxml:lang\s*=\s*[\"']([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)",
        re.I,
    ),
    re.compile(rb"<(?:dc:)?language>\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)\s*<", re.I),
    re.compile(rb"\"language\"\s*:\s*\"([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)\"", re.I),
)
_SEGMENT = re.compile(r"([a-z]{2})(?:[-_][a-z]{2})?")


def known_language(tag: str | None) -> str | None:
    """`tag` lower-cased ("fr-ca", "en-us": dates read in it keep the region's order) when
    its primary subtag is one Babel knows, else None."""
    if not tag:
        return None
    cleaned = tag.strip().replace("_", "-").lower()
    if not re.fullmatch(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?", cleaned):
        return None
    try:
        Locale.parse(cleaned.split("-")[0])
    except (UnknownLocaleError, ValueError):
        return None
    return cleaned


def declared_language(content: bytes) -> str | None:
    """The language a feed or page declares near its top, if any."""
    head = content[:_HEAD]
    for pattern in _DECLARED:
        match = pattern.search(head)
        if match:
            found = known_language(match.group(1).decode("ascii", "replace"))
            if found:
                return found
    return None


def url_language(url: str) -> str | None:
    """A language the URL names: "/fr/", "/es-es/", "?lang=fr", "fr.example.org"."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    for key, value in parse_qsl(parts.query):
        if key.lower() in ("lang", "language", "hl", "locale"):
            found = known_language(value)
            if found:
                return found
    for segment in parts.path.lower().split("/")[:4]:
        if _SEGMENT.fullmatch(segment):
            found = known_language(segment)
            if found:
                return found
    host = (parts.hostname or "").split(".")
    if len(host) > 2 and _SEGMENT.fullmatch(host[0]):
        return known_language(host[0])
    return None


def detect_language(content: bytes, url: str) -> str | None:
    """The source's language: declared by the document, else named by its URL."""
    return declared_language(content) or url_language(url)
