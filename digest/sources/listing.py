"""HTML news-listing pages read with CSS selectors (lxml + cssselect).

A page's items are the elements `item` matches; inside each, `title`, `link`, `date`,
`summary` and `image` pick the parts. With `siblings`, an item is the matched element and the
siblings that follow it up to the next match (a flat list: a heading, then its date and summary,
with no element around each item). The page may go on: `next` selects a next-page link, or
`page_param` names a query parameter that counts pages (or offsets, with `page_step`).
Titles are the text a reader sees: text hidden with `display:none`, `hidden` or `aria-hidden`
is left out.
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import lxml.html
from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector

from digest.sources.dates import parse_date
from digest.sources.encoding import decode
from digest.sources.errors import SourceError
from digest.sources.guids import item_guid
from digest.sources.parsed import ParsedItem
from digest.sources.summaries import sanitise_summary
from digest.sources.text import clean_title, element_text
from digest.urls import absolute_url

MAX_PAGES_LIMIT = 50
DEFAULT_MAX_PAGES = 5
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_HEADINGS = "h1, h2, h3, h4, h5, h6"


@dataclass(slots=True)
class Selectors:
    """How to read a listing page; stored as a plain dict in `Source.selectors`."""

    item: str
    title: str | None = None
    link: str | None = None
    date: str | None = None
    summary: str | None = None
    image: str | None = None
    next: str | None = None
    max_pages: int | None = None
    page_param: str | None = None  # e.g. "page" (1, 2, 3 ...) or "offset" with page_step
    page_step: int = 1
    siblings: bool = False  # an item runs on over the siblings after the matched element
    date_order: str | None = None  # "MDY" or "DMY": how the page writes 05.06.15
    inferred: bool = field(default=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selectors:
        if not data.get("item"):
            raise SourceError("the item selector is missing")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        selectors = cls(**known)
        selectors.check()
        return selectors

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None and k != "inferred"}
        if data.get("page_step") == 1:
            del data["page_step"]
        if not data.get("siblings"):
            data.pop("siblings", None)
        return data

    def with_paging(self, given: Selectors | None) -> Selectors:
        """These selectors with the paging options `given` sets (next, max_pages, page_param)."""
        if given is None:
            return self
        changed = {
            name: getattr(given, name)
            for name in ("next", "max_pages", "page_param")
            if getattr(given, name) is not None
        }
        if given.page_param is not None:
            changed["page_step"] = given.page_step
        return replace(self, **changed) if changed else self

    def check(self) -> None:
        """Fail early, in words, on a selector cssselect cannot read."""
        for name in ("item", "title", "link", "date", "summary", "image", "next"):
            value = getattr(self, name)
            if value:
                try:
                    compile_css(value)
                except SourceError as exc:
                    raise SourceError(f"--{name}: {exc}") from exc
        if self.date_order not in (None, "MDY", "DMY"):
            raise SourceError("date_order must be MDY or DMY")
        if self.max_pages is not None and not 1 <= int(self.max_pages) <= MAX_PAGES_LIMIT:
            raise SourceError(f"max_pages must be between 1 and {MAX_PAGES_LIMIT}")

    @property
    def page_cap(self) -> int:
        if self.max_pages:
            return min(int(self.max_pages), MAX_PAGES_LIMIT)
        return DEFAULT_MAX_PAGES if (self.next or self.page_param) else 1


@lru_cache(maxsize=1024)  # bounded: inference tries many candidates on every page
def compile_css(selector: str) -> Any:
    try:
        return CSSSelector(selector)
    except (SelectorError, etree.XPathError, ValueError) as exc:
        raise SourceError(f"invalid CSS selector {selector!r}: {exc}") from exc


def select(element: Any, selector: str) -> list[Any]:
    return list(compile_css(selector)(element))


def select_one(element: Any, selector: str | None) -> Any | None:
    if not selector:
        return None
    found = compile_css(selector)(element)
    return found[0] if found else None


_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
HIDDEN_CLASSES = frozenset({"hidden", "sr-only", "visually-hidden", "screen-reader-text"})


def is_hidden(element: Any) -> bool:
    """Whether the element is hidden from a reader by its own markup (not by a stylesheet)."""
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    style = element.get("style")
    if style and _HIDDEN_STYLE.search(style):
        return True
    classes = element.get("class")
    return bool(classes) and not HIDDEN_CLASSES.isdisjoint(classes.split())


def visible_text(element: Any, leave_out: Any | None = None) -> str:
    """`element_text` without the parts the markup hides (a title's hidden author or count),
    nor `leave_out` (a date inside a title link)."""
    if leave_out is None and not any(
        is_hidden(e) for e in element.iter() if isinstance(e.tag, str)
    ):
        return element_text(element)
    parts: list[str] = []

    def walk(node: Any) -> None:
        if node is leave_out or is_hidden(node):
            return
        tag = node.tag.lower()
        if tag in ("script", "style", "template", "noscript"):
            return
        parts.append(" ")
        parts.append(node.text or "")
        for child in node:
            if isinstance(child.tag, str):
                walk(child)
            if child.tail:
                parts.append(child.tail)
        parts.append(" ")

    walk(element)
    return "".join(parts)


def item_blocks(document: Any, selectors: Selectors) -> list[Any]:
    """The item elements `selectors.item` matches; with `siblings`, each match and the siblings
    after it up to the next match, copied under one <div> (the document is not changed)."""
    matched = select(document, selectors.item)
    if not selectors.siblings:
        return matched
    starts = set(matched)
    blocks = []
    for start in matched:
        block = lxml.html.Element("div")
        block.append(copy.deepcopy(start))
        for sibling in start.itersiblings():
            if sibling in starts:
                break
            block.append(copy.deepcopy(sibling))
        blocks.append(block)
    return blocks


@dataclass(slots=True)
class ListingPage:
    items: list[ParsedItem]
    next_url: str | None


def parse_html(content: bytes, content_type: str | None = None) -> Any:
    """An lxml document for the bytes, decoded by `encoding.decode`."""
    text, _ = decode(content, content_type)
    text = _XML_DECL.sub("", text, count=1)
    if not text.strip():
        raise SourceError("the page is empty")
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise SourceError(f"the page could not be read as HTML: {exc}") from exc


def base_of(document: Any, url: str) -> str:
    """The URL relative links resolve against: the page's, or its <base href> when that is
    http(s) (a page cannot move its links onto the disk with <base href="file:///">)."""
    base = document.find(".//base[@href]")
    if base is not None:
        resolved = absolute_url(base.get("href"), url)
        if resolved:
            return resolved
    return url


def _href_of(element: Any | None) -> str | None:
    if element is None:
        return None
    if element.tag == "a" and element.get("href"):
        return str(element.get("href"))
    inner = element.find(".//a[@href]")
    if inner is not None:
        return str(inner.get("href"))
    for ancestor in element.iterancestors("a"):
        if ancestor.get("href"):
            return str(ancestor.get("href"))
    return None


def _date_text(element: Any) -> str:
    if element.get("datetime"):
        return str(element.get("datetime"))
    inner = element.find(".//time[@datetime]")
    if inner is not None:
        return str(inner.get("datetime"))
    return element_text(element)


NUMERIC_DATE = re.compile(r"(?<!\d)(\d{1,2})[./-](\d{1,2})[./-](\d{4}|\d{2})(?!\d)")


def item_date(text: str, language: str | None, order: str | None = None) -> datetime | None:
    """The date a listing writes, read in the page's own order of day and month when known
    (05.06.15 is the 6th of May on a page that also writes 05.19.15)."""
    match = NUMERIC_DATE.search(text) if order else None
    if match:
        first, second, year = (int(g) for g in match.groups())
        month, day = (first, second) if order == "MDY" else (second, first)
        if year < 100:
            year += 2000 if year < 70 else 1900
        try:
            return datetime(year, month, day, tzinfo=UTC)
        except ValueError:
            pass
    return parse_date(text, language)


def _image_of(element: Any | None, base: str) -> str | None:
    if element is None:
        return None
    img = element if element.tag == "img" else element.find(".//img")
    if img is None:
        return None
    src = img.get("src") or img.get("data-src") or (img.get("srcset") or "").split(" ")[0]
    return absolute_url(src, base)


def _inner_html(element: Any) -> str:
    return (element.text or "") + "".join(
        lxml.html.tostring(child, encoding="unicode") for child in element
    )


def _default_title(block: Any) -> Any | None:
    heading = select_one(block, _HEADINGS)
    if heading is not None:
        return heading
    for link in block.iter("a"):
        if link.get("href") and element_text(link).strip():
            return link
    return None


def read_item(
    block: Any, selectors: Selectors, base: str, language: str | None
) -> ParsedItem | None:
    """One item block as a ParsedItem; None when it has neither a title nor a link."""
    local_ok = base.startswith("file:")
    title_el = select_one(block, selectors.title) if selectors.title else _default_title(block)
    date_el = select_one(block, selectors.date) if selectors.date else block.find(".//time")
    # A date inside the title link is the date, not words of the title.
    inside = date_el if date_el is not None and title_el in date_el.iterancestors() else None
    title = (
        clean_title(visible_text(title_el, inside), is_html=False) if title_el is not None else ""
    )
    link_el = select_one(block, selectors.link) if selectors.link else title_el
    href = _href_of(link_el) if link_el is not None else None
    if href is None and not selectors.link:
        href = _href_of(block)
    url = absolute_url(href, base, local_ok=local_ok)
    if not title and not url:
        return None
    published = (
        item_date(_date_text(date_el), language, selectors.date_order)
        if date_el is not None
        else None
    )
    summary_html = summary_text = ""
    summary_el = select_one(block, selectors.summary)
    if summary_el is not None:
        summary_html, summary_text = sanitise_summary(_inner_html(summary_el), url or base)
    image_el = select_one(block, selectors.image) if selectors.image else block
    return ParsedItem(
        guid=item_guid(None, url, title, published),
        title=title,
        url=url,
        summary_html=summary_html,
        summary_text=summary_text,
        published_at=published,
        image_url=_image_of(image_el, base),
    )


def page_url(url: str, param: str, value: int) -> str:
    """`url` with the query parameter `param` set to `value`, its other parameters kept."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != param]
    query.append((param, str(value)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def next_page_url(document: Any, selectors: Selectors, base: str, url: str) -> str | None:
    """The URL of the page after `url` (the page `document` was read from), if any."""
    if selectors.next:
        element = select_one(document, selectors.next)
        href = _href_of(element) if element is not None else None
        # A local page's relative next link stays a file: URL so that reading it is refused
        # in words (a warning), not silently: only a source's own address is read from disk.
        return absolute_url(href, base, local_ok=base.startswith("file:"))
    if selectors.page_param:
        parts = dict(parse_qsl(urlsplit(url).query))
        step = max(1, int(selectors.page_step or 1))
        try:
            current = int(parts.get(selectors.page_param, "0" if step > 1 else "1"))
        except ValueError:
            return None
        return page_url(url, selectors.page_param, current + step)
    return None


def read_page(
    document: Any, url: str, selectors: Selectors, language: str | None = None
) -> ListingPage:
    """The items of one parsed listing page, in page order, and where the next page is."""
    base = base_of(document, url)
    items = [
        item
        for block in item_blocks(document, selectors)
        if (item := read_item(block, selectors, base, language)) is not None
    ]
    return ListingPage(items, next_page_url(document, selectors, base, url))


def parse_listing(
    content: bytes,
    url: str,
    selectors: Selectors,
    language: str | None = None,
    content_type: str | None = None,
) -> ListingPage:
    """`read_page` for a page's bytes."""
    return read_page(parse_html(content, content_type), url, selectors, language)
