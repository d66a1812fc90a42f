"""Feeds a site page announces with `<link rel="alternate">`, best first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from digest.sources.listing import base_of
from digest.sources.text import one_line
from digest.urls import absolute_url

# Atom has the clearest dates and ids; RSS next; JSON Feed last (rarer, same content).
_PREFERENCE = {
    "application/atom+xml": 0,
    "application/rss+xml": 1,
    "application/rdf+xml": 2,
    "application/feed+json": 3,
    "application/json": 4,
}


@dataclass(frozen=True, slots=True)
class FeedLink:
    url: str
    type: str
    title: str


def _is_secondary(title: str, url: str) -> bool:
    # Comment feeds sit beside the site's news feed on many blogs.
    text = f"{title} {url}".lower()
    return "comment" in text


def discover_feeds(document: Any, page_url: str) -> list[FeedLink]:
    """The page's announced feeds: main feeds before comment feeds, Atom before RSS before
    JSON Feed, otherwise in page order."""
    base = base_of(document, page_url)
    found: list[tuple[tuple[int, int, int], FeedLink]] = []
    seen: set[str] = set()
    for position, link in enumerate(document.iter("link")):
        rels = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower().split(";")[0].strip()
        if "alternate" not in rels or kind not in _PREFERENCE:
            continue
        # http(s) only, even on a local page: the feed found may become the source's address.
        url = absolute_url(link.get("href"), base)
        if url is None or url in seen:
            continue
        seen.add(url)
        title = one_line(link.get("title") or "")
        rank = (int(_is_secondary(title, url)), _PREFERENCE[kind], position)
        found.append((rank, FeedLink(url=url, type=kind, title=title)))
    return [link for _rank, link in sorted(found, key=lambda pair: pair[0])]
