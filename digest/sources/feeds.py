"""Feeds: RSS 0.9x/1.0/2.0 and Atom through feedparser, JSON Feed read with json.

Both give `ParsedItem`s normalised the same way; a document that is not a feed raises
`SourceError` with what it looks like instead, never an empty list that reads as success.
"""

from __future__ import annotations

import calendar
import html
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import feedparser

from digest.sources.dates import parse_date, to_utc
from digest.sources.encoding import as_utf8_xml, decode
from digest.sources.errors import SourceError
from digest.sources.guids import item_guid
from digest.sources.parsed import ParsedItem
from digest.sources.summaries import sanitise_summary
from digest.sources.text import clean_title
from digest.urls import absolute_url

_JSON_FEED_VERSION = re.compile(r"^https?://jsonfeed\.org/version/", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_LEADING = re.compile(rb"^(\xef\xbb\xbf)?\s+")


def looks_like(content: bytes) -> str:
    """A first guess at what a document is: "json", "feed", "html" or "unknown"."""
    head = content[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"{", b"[")):
        return "json"
    if re.search(rb"<(rss|feed|rdf:rdf)[\s>]", head[:2048]):
        return "feed"
    if re.search(rb"<(!doctype html|html|head|body)[\s>]", head):
        return "html"
    return "unknown"


def _html_title(content: bytes) -> str:
    text, _ = decode(content[:20_000])
    match = _HTML_TITLE.search(text)
    return clean_title(match.group(1)) if match else ""


def not_a_feed(content: bytes, url: str, detail: str = "") -> SourceError:
    kind = looks_like(content)
    if kind == "html":
        title = _html_title(content)
        named = f" ({title!r})" if title else ""
        return SourceError(f"{url} is an HTML page{named}, not a feed")
    if not content.strip():
        return SourceError(f"{url} is empty, not a feed")
    suffix = f": {detail}" if detail else ""
    return SourceError(f"{url} is not an RSS, Atom or JSON feed{suffix}")


def parse_feed(content: bytes, url: str, content_type: str | None = None) -> list[ParsedItem]:
    """The items of a feed document fetched from `url` (relative links resolve against it)."""
    if looks_like(content) == "json":
        return parse_json_feed(content, url, content_type)
    return parse_xml_feed(content, url, content_type)


# --- RSS and Atom --------------------------------------------------------------------------


def _entry_time(entry: Any) -> datetime | None:
    # rss-parser and readers prefer the publication date, then the last update.
    for key in ("published", "updated", "created"):
        # dict.get: FeedParserDict.get maps updated->published with a deprecation warning.
        value = dict.get(entry, f"{key}_parsed")
        raw = str(dict.get(entry, key) or "").strip()
        if raw[:4].isdigit():
            # RFC 3339 keeps milliseconds that feedparser's struct_time drops.
            try:
                return to_utc(datetime.fromisoformat(raw))
            except ValueError:
                pass
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, OSError, TypeError):
                continue
    for key in ("published", "updated"):
        if written := dict.get(entry, key):
            return parse_date(str(written))
    return None


def _entry_link(entry: Any, base: str, local_ok: bool) -> str | None:
    link = entry.get("link")
    if not link:
        for candidate in entry.get("links") or []:
            if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
                link = candidate["href"]
                break
    return absolute_url(link, base, local_ok=local_ok)


def _entry_summary(entry: Any) -> str:
    contents = entry.get("content") or []
    html_parts = [str(c.get("value", "")) for c in contents if "html" in (c.get("type") or "")]
    if entry.get("summary"):
        return str(entry["summary"])
    if html_parts:
        return str(html_parts[0])
    return str(contents[0].get("value", "")) if contents else ""


def _entry_image(entry: Any, base: str) -> str | None:
    candidates: list[str] = []
    for key in ("media_thumbnail", "media_content"):
        for media in entry.get(key) or []:
            medium = media.get("medium") or media.get("type") or "image"
            if "image" in medium and media.get("url"):
                candidates.append(media["url"])
    for enclosure in entry.get("enclosures") or []:
        if (enclosure.get("type") or "").startswith("image/") and enclosure.get("href"):
            candidates.append(enclosure["href"])
    if isinstance(entry.get("image"), dict) and entry["image"].get("href"):
        candidates.append(entry["image"]["href"])
    for candidate in candidates:
        if url := absolute_url(candidate, base):
            return url
    return None


def parse_xml_feed(content: bytes, url: str, content_type: str | None = None) -> list[ParsedItem]:
    body = _LEADING.sub(b"", content, count=1)
    local = url.startswith("file:")
    headers = {"content-type": "application/xml; charset=utf-8"}
    if not local:
        headers["content-location"] = url  # relative links resolve against the feed's URL
    try:
        parsed = feedparser.parse(
            as_utf8_xml(body, content_type),
            response_headers=headers,
            sanitize_html=False,  # nh3 sanitises below, once, for feeds and pages alike
            resolve_relative_uris=True,
        )
    except Exception as exc:  # feedparser wraps most errors in `bozo`; be safe anyway
        raise SourceError(f"{url} could not be parsed as a feed: {exc}") from exc
    if not parsed.get("version") and not parsed.entries:
        detail = str(parsed.get("bozo_exception") or "")
        raise not_a_feed(content, url, detail)
    # A feed read from disk: its links resolve against the site it names, not the file.
    site = absolute_url(str(parsed.feed.get("link") or ""), None)
    base = site if local and site else url
    local_ok = local and not site
    items: list[ParsedItem] = []
    for entry in parsed.entries:
        # Feeds put entity-encoded HTML in titles whatever their type says: always strip it.
        title = clean_title(entry.get("title"))
        link = _entry_link(entry, base, local_ok)
        published = _entry_time(entry)
        summary_html, summary_text = sanitise_summary(_entry_summary(entry), link or base)
        items.append(
            ParsedItem(
                guid=item_guid(entry.get("id"), link, title, published),
                title=title,
                url=link,
                summary_html=summary_html,
                summary_text=summary_text,
                published_at=published,
                image_url=_entry_image(entry, base),
                categories=clean_categories(t.get("term") for t in entry.get("tags") or ()),
            )
        )
    return items


# --- JSON Feed (https://jsonfeed.org/version/1.1) ------------------------------------------


def parse_json_feed(content: bytes, url: str, content_type: str | None = None) -> list[ParsedItem]:
    text, _ = decode(content, content_type)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"{url} is not valid JSON: {exc}") from exc
    if (
        not isinstance(document, dict)
        or not _JSON_FEED_VERSION.match(str(document.get("version", "")))
        or not isinstance(document.get("items"), list)
    ):
        raise SourceError(f"{url} is JSON but not a JSON Feed (no jsonfeed.org version/items)")
    base = url
    if isinstance(document.get("home_page_url"), str) and url.startswith("file:"):
        base = document["home_page_url"]
    items: list[ParsedItem] = []
    for entry in document["items"]:
        if not isinstance(entry, dict):
            continue
        link = absolute_url(_str(entry.get("url")) or _str(entry.get("external_url")), base)
        raw_summary = (
            _str(entry.get("content_html"))
            or _str(entry.get("summary"))
            or _escape_text(_str(entry.get("content_text")))
        )
        summary_html, summary_text = sanitise_summary(raw_summary, link or base)
        published = parse_date(_str(entry.get("date_published"))) or parse_date(
            _str(entry.get("date_modified"))
        )
        title = clean_title(_str(entry.get("title")), is_html=False)
        image = absolute_url(_str(entry.get("image")) or _str(entry.get("banner_image")), base)
        raw_id = entry.get("id")
        items.append(
            ParsedItem(
                guid=item_guid(str(raw_id) if raw_id is not None else None, link, title, published),
                title=title,
                url=link,
                summary_html=summary_html,
                summary_text=summary_text,
                published_at=published,
                image_url=image,
                categories=clean_categories(_list(entry.get("tags"))),
            )
        )
    return items


MAX_CATEGORIES = 20
MAX_CATEGORY = 100


def clean_categories(values: Iterable[Any]) -> tuple[str, ...]:
    """A feed's categories for an item: strings, one line each, markup stripped, capped in number
    and length, without repeats (any case)."""
    found: dict[str, str] = {}
    for value in values:
        if not isinstance(value, str):
            continue
        term = clean_title(value)[:MAX_CATEGORY].strip()
        if term and term.casefold() not in found:
            found[term.casefold()] = term
        if len(found) >= MAX_CATEGORIES:
            break
    return tuple(found.values())


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _escape_text(value: str | None) -> str | None:
    if value is None:
        return None
    return "".join(f"<p>{html.escape(p)}</p>" for p in value.split("\n\n") if p.strip())
