"""Read a source: fetch its document(s) and parse them as a feed or a listing page.

`read_source` is what collection and `digest sources try` share: the first document is fetched
conditionally (ETag / Last-Modified; a 304 stops here, nothing is parsed), its kind is decided
("auto": a feed, else a feed the page announces, else the page as a listing), and a listing
page is followed to its next pages up to the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from digest.config import Settings
from digest.sources.discover import FeedLink, discover_feeds
from digest.sources.errors import FetchRefused, SourceError
from digest.sources.feeds import looks_like, not_a_feed, parse_feed
from digest.sources.fetch import Fetched, Limiter, fetch_async, make_client, run_sync
from digest.sources.infer import infer_candidates
from digest.sources.language import detect_language
from digest.sources.listing import Selectors, parse_html, read_page
from digest.sources.parsed import ParsedItem
from digest.sources.text import clean_title

KINDS = ("auto", "feed", "html")
MAX_ITEMS = 2_000  # per source and run: a hostile page cannot flood the store


@dataclass(slots=True)
class ReadResult:
    """What reading a source gave; `kind` is what it turned out to be ("feed" or "html")."""

    url: str
    kind: str
    items: list[ParsedItem] = field(default_factory=list)
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    selectors: Selectors | None = None  # the listing's, given or inferred
    title: str = ""  # the document's own title, a default name for the source
    feed_url: str | None = None  # when "auto" followed a feed the page announces
    pages: int = 1
    warnings: list[str] = field(default_factory=list)  # e.g. a later page that failed
    # Inferred listings: each candidate selector set with the items it reads on the first page.
    candidates: list[tuple[Selectors, list[ParsedItem]]] = field(default_factory=list)
    language: str | None = None  # what the document declares, else what its URL names


def _page_title(document: Any) -> str:
    title = document.find(".//title")
    return clean_title(title.text_content()) if title is not None else ""


async def _read_listing(
    client: httpx.AsyncClient,
    first: Fetched,
    document: Any,
    selectors: Selectors | None,
    language: str | None,
    settings: Settings,
    limiter: Limiter | None,
    warnings: list[str],
    result: ReadResult,
    base_url: str | None = None,
    candidate: int = 0,
) -> tuple[list[ParsedItem], Selectors, int]:
    page_url, pages = base_url or first.url, 1
    if selectors is None or not selectors.item:
        # Given paging options (next, max_pages) apply to whichever candidate is taken.
        found = infer_candidates(document, page_url, language)
        result.candidates = [
            (c.with_paging(selectors), read_page(document, page_url, c, language).items)
            for c in found
        ]
        if not 0 <= candidate < len(found):
            raise SourceError(f"there are {len(found)} candidates: choose 1 to {len(found)}")
        selectors = result.candidates[candidate][0]
    items: list[ParsedItem] = []
    seen: set[str] = set()
    visited = {first.url}
    while True:
        page = read_page(document, page_url, selectors, language)
        fresh = 0
        for item in page.items:
            if item.guid not in seen:
                seen.add(item.guid)
                items.append(item)
                fresh += 1
        next_url = page.next_url
        # A page with nothing new ends the walk: page/offset URLs run on past the last page.
        if fresh == 0 or not next_url or next_url in visited or pages >= selectors.page_cap:
            break
        if base_url and first.url.startswith("file:"):
            # A saved page's next page is on the site, not on disk: not fetched from a file.
            warnings.append(f"the next page ({next_url}) is not read for a saved page")
            break
        if len(items) >= MAX_ITEMS:
            break
        visited.add(next_url)
        try:
            fetched = await fetch_async(client, next_url, settings=settings, limiter=limiter)
            document = parse_html(fetched.content, fetched.content_type)
        except SourceError as exc:
            # The pages read so far stand; a broken later page is worth a warning, no more.
            warnings.append(f"page {pages + 1} not read: {exc}")
            break
        page_url, pages = fetched.url, pages + 1
    if not items and pages == 1:
        raise SourceError(f"the selector {selectors.item!r} found no items on {first.url}")
    return items, selectors, pages


async def read_source(
    client: httpx.AsyncClient,
    target: str,
    *,
    kind: str = "auto",
    selectors: Selectors | None = None,
    language: str | None = None,
    etag: str | None = None,
    last_modified: str | None = None,
    settings: Settings,
    limiter: Limiter | None = None,
    base_url: str | None = None,
    candidate: int = 0,
) -> ReadResult:
    """Fetch and parse one source; raises SourceError with the reason in words.

    `base_url` is the address a saved page came from (its links resolve against it);
    `candidate` picks among inferred selector sets (0: the best)."""
    if kind not in KINDS:
        raise SourceError(f"unknown kind {kind!r}: use auto, feed or html")
    # The operator configured `target`: it alone may be a local file.
    first = await fetch_async(
        client,
        target,
        local_ok=True,
        etag=etag,
        last_modified=last_modified,
        settings=settings,
        limiter=limiter,
    )
    result = ReadResult(
        url=first.url, kind=kind, etag=first.etag, last_modified=first.last_modified
    )
    if first.not_modified:
        result.not_modified = True
        return result
    result.language = detect_language(first.content, first.url)
    sniffed = looks_like(first.content)
    if kind == "feed" or (kind == "auto" and sniffed in ("feed", "json", "unknown")):
        result.kind = "feed"
        result.items = parse_feed(first.content, first.url, first.content_type)
        return _capped(result)
    document = parse_html(first.content, first.content_type)
    result.title = _page_title(document)
    if kind == "auto" and sniffed == "html" and (selectors is None or not selectors.item):
        feeds = discover_feeds(document, first.url)
        feed = await _first_readable_feed(client, feeds, settings, limiter, result.warnings)
        if feed is not None:
            result.kind, result.feed_url = "feed", feed[0].url
            result.items = feed[1]
            return _capped(result)
    result.kind = "html"
    try:
        items, used, pages = await _read_listing(
            client, first, document, selectors, language, settings, limiter, result.warnings,
            result, base_url, candidate,
        )  # fmt: skip
    except SourceError as exc:
        if kind == "auto" and sniffed != "html":
            raise not_a_feed(first.content, first.url) from exc
        if kind == "auto" and (selectors is None or not selectors.item):
            raise SourceError(f"{not_a_feed(first.content, first.url)}; {exc}") from exc
        raise
    result.items, result.selectors, result.pages = items, used, pages
    return _capped(result)


async def _first_readable_feed(
    client: httpx.AsyncClient,
    feeds: list[FeedLink],
    settings: Settings,
    limiter: Limiter | None,
    warnings: list[str],
) -> tuple[FeedLink, list[ParsedItem]] | None:
    for link in feeds[:3]:
        try:
            fetched = await fetch_async(client, link.url, settings=settings, limiter=limiter)
            return link, parse_feed(fetched.content, fetched.url, fetched.content_type)
        except FetchRefused as exc:
            warnings.append(f"announced feed not read: {exc}")
        except SourceError:
            continue
    return None


def as_selectors(selectors: dict[str, Any] | Selectors | None) -> Selectors | None:
    """Selectors from a stored or typed dict; an empty dict means "infer them"."""
    if isinstance(selectors, dict):
        return Selectors.from_dict(selectors) if selectors else None
    return selectors


def _capped(result: ReadResult) -> ReadResult:
    del result.items[MAX_ITEMS:]
    return result


def read_once(
    url_or_path: str,
    kind: str = "auto",
    selectors: dict[str, Any] | Selectors | None = None,
    language: str | None = None,
    *,
    settings: Settings,
    base_url: str | None = None,
    candidate: int = 0,
) -> ReadResult:
    """`read_source` for one target from synchronous code, with its own HTTP client: what a
    source gives now, without storing anything (`digest sources try`)."""
    chosen = as_selectors(selectors)

    async def once() -> ReadResult:
        async with make_client(settings) as client:
            return await read_source(
                client, url_or_path, kind=kind, selectors=chosen, language=language,
                settings=settings, base_url=base_url, candidate=candidate,
            )  # fmt: skip

    return run_sync(once())
