"""HTML news-listing pages read with CSS selectors (lxml + cssselect).

A page's items are the elements `item` matches; inside each, `title`, `link`, `date`,
`summary` and `image` pick the parts. The page may go on: `next` selects a next-page link,
or `page_param` names a query parameter that counts pages (or offsets, with `page_step`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import lxml.html
from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector

from digest.sources.encoding import decode
from digest.sources.errors import SourceError
from digest.sources.normalise import (
    absolute_url,
    canonical_url,
    clean_title,
    element_text,
    parse_date,
    sanitise_summary,
)
from digest.sources.parsed import ParsedItem

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
        return data

    def check(self) -> None:
        """Fail early, in words, on a selector cssselect cannot read."""
        for name in ("item", "title", "link", "date", "summary", "image", "next"):
            value = getattr(self, name)
            if value:
                try:
                    compile_css(value)
                except SourceError as exc:
                    raise SourceError(f"--{name}: {exc}") from exc
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
    title = clean_title(element_text(title_el), is_html=False) if title_el is not None else ""
    link_el = select_one(block, selectors.link) if selectors.link else title_el
    href = _href_of(link_el) if link_el is not None else None
    if href is None and not selectors.link:
        href = _href_of(block)
    url = absolute_url(href, base, local_ok=local_ok)
    if not title and not url:
        return None
    date_el = select_one(block, selectors.date) if selectors.date else block.find(".//time")
    published = parse_date(_date_text(date_el), language) if date_el is not None else None
    summary_html = summary_text = ""
    summary_el = select_one(block, selectors.summary)
    if summary_el is not None:
        summary_html, summary_text = sanitise_summary(_inner_html(summary_el), url or base)
    image_el = select_one(block, selectors.image) if selectors.image else block
    key = canonical_url(url) if url else None
    guid = key or "sha1:" + hashlib.sha1(f"{title}\n{published or ''}".encode()).hexdigest()
    return ParsedItem(
        guid=guid,
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
        for block in select(document, selectors.item)
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
