"""Find the repeated news blocks of a listing page without being told, and say how (selectors).

Candidates come from links: links whose path of tags and classes from the page's root is the
same are one slot repeated, and each one's block is the largest element around it that holds
no other link of that slot. A candidate is scored on its structure, never excluded for where it
sits: how many blocks; the share of them with a headline, a date and text beyond the title; how
distinct their links are; whether the link stands alone or runs inside a sentence; and whether
the group sits in navigation, a header, a footer or a sidebar (a penalty) or in the main content.

For the best candidates, the item selector goes down from the blocks' nearest common container
with child combinators (or is the blocks' own class when that alone picks them). Inside the
blocks, the title is the headline element (inside a link that wraps a whole card too), and the
title, date and summary selectors are the ones that pick the same part in most blocks and
little else, by position when only position tells (a table's third column). A heading whose
date and summary are the siblings around it, with nothing wrapping each item, is read as
"an item is this element and the siblings that follow it". The person adding the source sees
the best candidates and picks one.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from digest.sources.dates import parse_date
from digest.sources.errors import SourceError
from digest.sources.listing import (
    NUMERIC_DATE,
    Selectors,
    base_of,
    is_hidden,
    item_blocks,
    select,
    select_one,
    visible_text,
)
from digest.sources.text import element_text, one_line

MIN_ITEMS = 2
CANDIDATES = 3  # selector sets offered to the person adding the source
_SCORED_FULLY = 6  # groups whose parts are worked out before the final ranking
_SAMPLE = 24  # blocks looked at closely per group: enough to see the pattern, and fast
_COUNT_CAP = 40  # beyond this many blocks, more of them says nothing more about a list

_NO_CONTENT = frozenset(
    {"script", "style", "template", "noscript", "svg", "head", "select", "option", "iframe",
     "textarea", "button", "object", "canvas", "math"}
)  # fmt: skip
_HEADING = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCK_TAGS = frozenset(
    {"p", "li", "div", "td", "th", "dd", "dt", "section", "article", "blockquote", "tr",
     "figure", "figcaption", "header", "footer", "main", "aside", "ul", "ol", "table", "body",
     *_HEADING}
)  # fmt: skip
_STOP_AT = frozenset({"body", "html"})
_NOT_TITLES = re.compile(
    r"^(read more|more|continue reading|next|previous|see all|view all|all news|en savoir plus"
    r"|lire la suite|suite|weiterlesen|mehr|leer más|ver más|details|更多|详情|查看)\b",
    re.IGNORECASE,
)
_STATE_CLASSES = {
    "first", "last", "odd", "even", "active", "current", "selected", "clearfix", "row",
    "is-active", "is-first", "is-last", "featured", "sticky", "new", "hidden", "fixed",
}  # fmt: skip
_CSS_IDENT = re.compile(r"^-?[_a-zA-Z][_a-zA-Z0-9-]*$")
_TOKENS = re.compile(r"[-_\s]+|(?<=[a-z])(?=[A-Z])")
# Class or id words that say what a part of a page is (split on - and _ and camelCase).
_NAV_WORDS = frozenset(
    {"nav", "navbar", "navigation", "menu", "menubar", "submenu", "breadcrumb", "breadcrumbs",
     "pager", "pagination", "toolbar", "topbar", "skip", "tabs"}
)  # fmt: skip
_ASIDE_WORDS = frozenset(
    {"sidebar", "side", "aside", "widget", "widgets", "related", "popular", "trending", "tagcloud",
     "cloud", "blogroll", "ranking", "rank", "hot", "recommend", "recommended", "promo", "ad",
     "ads", "advert", "banner", "sponsor", "sponsors"}
)  # fmt: skip
_FRAME_WORDS = frozenset({"footer", "header", "masthead", "copyright", "cookie", "cookies"})
_SOCIAL_WORDS = frozenset({"share", "sharing", "social", "follow"})
# "content-with-sidebar", "has-nav", "no-header" describe a layout, not what the element is.
_LAYOUT_WORDS = frozenset({"with", "has", "no", "without", "layout"})
_MAIN_WORDS = frozenset({"main", "content", "primary", "posts", "articles", "news", "list"})
# Parts of a block that are about the item, not its headline.
_META_WORDS = frozenset(
    {"category", "categories", "cat", "tag", "tags", "label", "labels", "author", "byline",
     "meta", "muted", "more", "comment", "comments", "share", "kicker", "eyebrow", "topic",
     "topics", "avatar", "count", "readmore", "breadcrumb"}
)  # fmt: skip
_TITLE_WORDS = frozenset({"title", "headline", "heading", "header", "subject"})
_TITLE_PROPS = frozenset({"headline", "name"})
_DATEISH = re.compile(
    r"\d{4}|\d{1,2}[./-]\d{1,2}[./-]\d{2}|(jan|feb|m[aä]r|apr|ma[iy]|jun|jul|aug|sep|o[ck]t|nov"
    r"|d[eé]c|janv|févr|avr|juil|août)",
    re.IGNORECASE,
)
# A date a reader would recognise, found in a block's text (cheap: no parsing).
_DATE_IN_TEXT = re.compile(
    r"\b\d{4}[-./年]\s?\d{1,2}[-./月]\s?\d{1,2}"
    r"|\b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b"
    r"|\b\d{1,2}(st|nd|rd|th|er)?\.?\s+[^\W\d_]{3,10}\.?,?\s+\d{4}\b"
    r"|\b[^\W\d_]{3,10}\.?\s+\d{1,2}(st|nd|rd|th)?,?\s+\d{4}\b",
    re.IGNORECASE,
)
# A release's name: 2.10.2, v2.10.2, 1.0.0-rc.1 (short, few letters, still a title).
_VERSION = re.compile(r"^[vV]?\d+(\.\d+)+([-+.]?[0-9A-Za-z]+)*$")
_NEXT_SELECTORS = (
    'a[rel~="next"]', 'link[rel~="next"]', "li.next a", "li.pager-next a", "a.next",
    "a.next-page", ".pagination .next a", ".pager__item--next a",
)  # fmt: skip
_NEXT_TEXT = {"next", "next page", "next ›", "next »", "›", "»", "suivant", "page suivante",
              "weiter", "siguiente", "older posts", "older entries", "more news"}  # fmt: skip


def _tag(element: Any) -> str:
    return str(element.tag).lower()


def _stable_classes(element: Any) -> list[str]:
    return [
        c
        for c in (element.get("class") or "").split()
        if _CSS_IDENT.match(c) and not any(ch.isdigit() for ch in c) and c not in _STATE_CLASSES
    ]


def key_of(element: Any, classes: int = 1) -> str:
    """A CSS selector for an element's kind: its tag and its first stable class."""
    if classes == 1:
        return _key(_tag(element), element.get("class"))
    return _tag(element) + "".join(f".{c}" for c in _stable_classes(element)[:classes])


@lru_cache(maxsize=4096)
def _key(tag: str, classes: str | None) -> str:
    for name in (classes or "").split():
        stable = _CSS_IDENT.match(name) and not any(ch.isdigit() for ch in name)
        if stable and name not in _STATE_CLASSES:
            return f"{tag}.{name}"
    return tag


def _words(element: Any) -> set[str]:
    text = f"{element.get('class') or ''} {element.get('id') or ''}"
    return {w.lower() for w in _TOKENS.split(text) if w}


def _elements(node: Any) -> list[Any]:
    return [c for c in node if isinstance(c.tag, str)]


# ---------------------------------------------------------------- the page, walked once


_NOT_LINKS = ("#", "javascript:", "mailto:", "tel:", "data:")
_TEXT_LINKS = etree.XPath("descendant::a[normalize-space(@href)][normalize-space(.)]")


class _Link:
    """A link of the page: its raw href and text for all, the rest worked out when asked."""

    __slots__ = ("_raw", "_title", "element", "href")

    def __init__(self, element: Any, href: str) -> None:
        self.element = element
        self.href = href.split("#", 1)[0]  # enough to tell two links apart
        self._raw: str | None = None
        self._title: tuple[Any, str] | None = None

    @property
    def raw_text(self) -> str:
        """All its text, hidden parts too: enough to tell two links apart, and cheap."""
        if self._raw is None:
            self._raw = self.element.text_content().strip()
        return self._raw

    def _headline(self) -> tuple[Any, str]:
        if self._title is None:
            title = _title_target(self.element)
            self._title = (title, one_line(visible_text(title)))
        return self._title

    @property
    def title(self) -> Any:
        """The element whose text is the headline (inside a card link: its headline)."""
        return self._headline()[0]

    @property
    def text(self) -> str:
        return self._headline()[1]


class _Page:
    """Paths of tags and classes, and the visible links, from one walk over the page."""

    def __init__(self, document: Any, url: str, language: str | None) -> None:
        self.document = document
        self.base = base_of(document, url)
        self.language = language
        self.path: dict[Any, int] = {}
        self.links: list[_Link] = []
        self._slots: dict[tuple[Any, ...], _Slot | None] = {}
        body = document.find("body")
        self._walk(body if body is not None else document)

    def _walk(self, root: Any) -> None:
        self.path[root] = 0
        interned: dict[tuple[int, str], int] = {}
        found: list[Any] = _TEXT_LINKS(root)  # type: ignore[assignment]  # a node-set
        for element in found:
            href = str(element.get("href")).strip()
            if href.lower().startswith(_NOT_LINKS) or self._path_of(element, interned) < 0:
                continue
            self.links.append(_Link(element, href))

    def _path_of(self, element: Any, interned: dict[tuple[int, str], int]) -> int:
        """An id for the element's path of tags and classes from the root; -1 for an element
        a reader does not see (hidden, in a script or a form control, outside the body)."""
        chain = []
        node = element
        while node is not None and node not in self.path:
            chain.append(node)
            node = node.getparent()
        here = -1 if node is None else self.path[node]
        for node in reversed(chain):
            tag = node.tag
            if here < 0 or not isinstance(tag, str) or tag in _NO_CONTENT or is_hidden(node):
                here = -1
            else:
                step = (here, _key(tag, node.get("class")))
                found = interned.get(step)
                if found is None:
                    found = interned[step] = len(interned) + 1
                here = found
            self.path[node] = here
        return here

    def title_slot(self, blocks: list[Any]) -> _Slot | None:
        """`_title_slot`, once per set of blocks (groups of labels share their blocks)."""
        key = tuple(blocks)
        if key not in self._slots:
            self._slots[key] = _title_slot(self, blocks)
        return self._slots[key]


# ---------------------------------------------------------------- headlines


def _headline_score(text: str) -> float:
    """How much a text reads like a headline: 1 for a sentence-like line, less for a word."""
    if _VERSION.match(text):
        return 0.5
    if _NOT_TITLES.match(text) or sum(ch.isalpha() for ch in text) < 1:
        return 0.0
    if len(text) > 300:
        return 0.3
    if _DATE_IN_TEXT.fullmatch(text.strip()) or _looks_like_date_only(text):
        return 0.0
    if any(ord(ch) >= 0x2E80 for ch in text):  # CJK scripts write headlines without spaces
        return 1.0 if len(text) >= 5 else 0.5
    if len(text) >= 12 and len(text.split()) >= 2:
        return 1.0
    return 0.6 if len(text) >= 5 else 0.35


def _looks_like_date_only(text: str) -> bool:
    match = _DATE_IN_TEXT.search(text)
    return match is not None and len(text) - len(match.group(0)) <= 12 and len(text) <= 40


def _marked_as_title(element: Any) -> bool:
    if _tag(element) in _HEADING:
        return True
    if (element.get("itemprop") or "").lower() in _TITLE_PROPS:
        return True
    return not _TITLE_WORDS.isdisjoint(_words(element))


def _title_target(link: Any) -> Any:
    """The headline inside a link that wraps a whole card (label, headline, author, date ...)."""
    for heading in _HEADING:  # in rank order: a link holding two headings is titled by the higher
        inner = link.find(f".//{heading}")
        if inner is not None and not is_hidden(inner):
            return inner
    parts = [c for c in link.iter() if c is not link and isinstance(c.tag, str)]
    if not parts:
        return link
    for part in parts:
        if (part.get("itemprop") or "").lower() in _TITLE_PROPS and not is_hidden(part):
            return part
    for part in parts:
        words = _words(part)
        if (
            not _TITLE_WORDS.isdisjoint(words)
            and _META_WORDS.isdisjoint(words)
            and not is_hidden(part)
            and element_text(part).strip()
        ):
            return part
    card = _card_headline(link)
    return link if card is None else card


def _card_headline(link: Any) -> Any | None:
    """In a link whose text is all in parts (label, headline, byline, date, reading time ...)
    with no part marked: the part that reads most like a headline, the first of equals."""
    if (link.text or "").strip() or any((c.tail or "").strip() for c in link):
        return None
    parts = [c for c in _elements(link) if not is_hidden(c) and one_line(visible_text(c))]
    if len(parts) < 2:
        return None
    scored = [
        (_headline_score(one_line(visible_text(part))), -rank, part)
        for rank, part in enumerate(parts)
        if _META_WORDS.isdisjoint(_words(part))
    ]
    best = max(scored, key=lambda s: s[:2], default=None)
    if best is not None and best[0] > 0:
        return best[2]  # the part that reads most like a headline ("News" then the title)
    for part in parts:  # a version number, a code: not a sentence, still not the date
        text = one_line(visible_text(part))
        if _META_WORDS.isdisjoint(_words(part)) and not _looks_like_date_only(text):
            return part
    return None


def _in_heading(element: Any, block: Any) -> bool:
    """The element is, holds or sits in a heading or an element marked as the title."""
    if _marked_as_title(element) or any(element.iterdescendants(*_HEADING)):
        return True
    for ancestor in element.iterancestors():
        if ancestor is block:
            return _tag(block) in _HEADING
        if _marked_as_title(ancestor):
            return True
    return False


def _meta_part(element: Any, block: Any) -> bool:
    """The element is a category label, an author, a tag, a comment count ... of its block."""
    for node in (element, *element.iterancestors()):
        if node is block:
            return False
        if not _META_WORDS.isdisjoint(_words(node)):
            return True
    return False


def _line_text(holder: Any, link: Any) -> str:
    """The text of the line a link is on: its block's, without the blocks beside it."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        parts.append(node.text or "")
        for child in node:
            if isinstance(child.tag, str) and not is_hidden(child):
                inside = child is link or link in child.iterancestors()
                if inside or _tag(child) not in _BLOCK_TAGS:
                    walk(child)
            parts.append(child.tail or "")

    walk(holder)
    return one_line(" ".join(parts))


def _stands_alone(page: _Page, link: _Link, block: Any) -> bool:
    """The link is most of its line (a date or a label beside it), not words of a sentence."""
    holder = link.element
    for ancestor in link.element.iterancestors():
        holder = ancestor
        if ancestor is block or _tag(ancestor) in _BLOCK_TAGS:
            break
    around = len(_line_text(holder, link.element))
    return around == 0 or len(link.text) >= 0.5 * around


# ---------------------------------------------------------------- where a group sits


def _place_factor(container: Any) -> float:
    """Below 1 for navigation, headers, footers, sidebars and share bars; 1 in the main part."""
    factor = 1.0
    seen: set[str] = set()
    for node in (container, *container.iterancestors()):
        tag = _tag(node)
        if tag == "main" or node.get("role") == "main":
            break  # what wraps the main content is layout, whatever its classes say
        role = node.get("role") or ""
        if tag in ("nav", "menu") or role == "navigation":
            seen.add("nav-tag")
        elif tag in ("header", "footer") or role in ("banner", "contentinfo"):
            seen.add("frame-tag")
        elif tag == "aside" or role == "complementary":
            seen.add("aside-tag")
        words = _words(node)
        if words and _LAYOUT_WORDS.isdisjoint(words):
            if not _NAV_WORDS.isdisjoint(words):
                seen.add("nav")
            if not _ASIDE_WORDS.isdisjoint(words):
                seen.add("aside")
            if not _FRAME_WORDS.isdisjoint(words):
                seen.add("frame")
            if not _SOCIAL_WORDS.isdisjoint(words):
                seen.add("social")
    for mark in seen:
        factor *= 0.4 if mark.endswith("-tag") else 0.6
    return max(factor, 0.1)


def _main_factor(container: Any) -> float:
    for node in (container, *container.iterancestors()):
        if _tag(node) in ("main", "article") or node.get("role") == "main":
            return 1.15
        if not _MAIN_WORDS.isdisjoint(_words(node)) and _LAYOUT_WORDS.isdisjoint(_words(node)):
            return 1.1
    return 1.0


# ---------------------------------------------------------------- candidate groups


@dataclass(slots=True)
class _Group:
    blocks: list[Any]
    container: Any
    members: dict[Any, _Link]  # block -> its link of the group
    score: float = 0.0


def _spread_sample(values: list[Any], size: int = _SAMPLE) -> list[Any]:
    if len(values) <= size:
        return values
    step = len(values) / size
    return [values[int(i * step)] for i in range(size)]


def _group_blocks(links: list[_Link]) -> _Group | None:
    """The blocks of one slot's links: each link's largest ancestor holding no other of them,
    taken at one depth for all (the depth nine links in ten allow), under their container.

    The links share one path from the root, so their ancestors at one depth are alike: the
    walk goes up a level at a time, while most of them still hold one link each. Rows that
    each hold the same two or three of them (a category cell, then the title cell) are one
    block each, held by their first link."""
    current = [link.element for link in links]
    allowed = len(current) - len(current) // 10
    merged = False
    while True:
        parents = [element.getparent() for element in current]
        if any(p is None or _tag(p) in _STOP_AT for p in parents):
            break
        counts = Counter(parents)
        if sum(1 for p in parents if counts[p] == 1) >= allowed:
            current = parents
            continue
        sizes = Counter(counts.values())
        size, rows = sizes.most_common(1)[0]
        if merged or not 2 <= size <= 3 or rows < max(MIN_ITEMS, 0.9 * len(counts)):
            break
        merged = True
        held: dict[Any, list[int]] = {}
        for index, parent in enumerate(parents):
            held.setdefault(parent, []).append(index)
        rows_of = {p: i for p, i in held.items() if len(i) == size}
        # Of the links each row holds, those whose addresses differ most are its own.
        rank = max(
            range(size),
            key=lambda r: len({links[i[r]].href for i in rows_of.values()}),
        )
        links = [links[i[rank] if len(i) == size else i[0]] for i in held.values()]
        current = list(held)
        allowed = len(current) - len(current) // 10
    members: dict[Any, _Link] = {}
    for element, link in zip(current, links, strict=True):
        members.setdefault(element, link)
    if len(members) < MIN_ITEMS:
        return None
    above = set(members)
    while len(above) > 1:
        above = {element.getparent() for element in above}
        if None in above:
            return None
    container = above.pop()
    if container is None or any(b is container for b in members):
        return None
    return _Group(list(members), container, members)


def _date_share(page: _Page, blocks: list[Any]) -> float:
    found = 0
    for block in blocks:
        if block.find(".//time") is not None or _DATE_IN_TEXT.search(block.text_content()[:600]):
            found += 1
    return found / len(blocks) if blocks else 0.0


def _score(page: _Page, group: _Group) -> float:
    sample = [(b, group.members[b]) for b in _spread_sample(group.blocks)]
    n = len(group.blocks)
    distinct = len({group.members[b].href for b in group.blocks}) / n
    sampled = [link for _b, link in sample]
    texts = len({link.raw_text.casefold() for link in sampled}) / len(sampled)

    def share(test: Any) -> float:
        return sum(bool(test(block, link)) for block, link in sample) / len(sample)

    headline = sum(_headline_score(link.text) for _b, link in sample) / len(sample)
    in_heading = share(lambda b, link: _in_heading(link.title, b))
    alone = share(lambda b, link: _stands_alone(page, link, b))
    meta = share(lambda b, link: _meta_part(link.element, b))
    extra = share(lambda b, link: len(" ".join(b.text_content().split())) - len(link.text) >= 20)
    if distinct * texts < 0.8 or meta > 0.3 or headline < 0.5:
        # The links that made the group may be its labels: the blocks' best titles tell.
        slot = page.title_slot([b for b, _link in sample[:8]])
        if slot is not None and slot.score > 1.0:
            distinct, texts = slot.distinct, slot.texts
            headline, in_heading, meta = slot.headline, slot.marked, slot.meta
            alone = max(alone, in_heading)
    dated = _date_share(page, [b for b, _link in sample])
    quality = 1 + 1.2 * in_heading + dated + 0.5 * extra + headline
    return (
        math.log2(1 + min(n, _COUNT_CAP))
        * quality
        * (distinct * texts) ** 2
        * (0.2 + 0.8 * alone)
        * (1 - 0.7 * meta)
        * _place_factor(group.container)
        * _main_factor(group.container)
    )


def _groups(page: _Page) -> list[_Group]:
    slots: dict[int, list[_Link]] = {}
    for link in page.links:
        slots.setdefault(page.path[link.element], []).append(link)
    by_blocks: dict[tuple[Any, ...], _Group] = {}
    for links in slots.values():
        if len(links) < MIN_ITEMS:
            continue
        group = _group_blocks(links)
        if group is None:
            continue
        for part in _split_by_section(group):
            part.score = _score(page, part)
            key = tuple(part.blocks)
            if key not in by_blocks or by_blocks[key].score < part.score:
                by_blocks[key] = part
    return sorted(by_blocks.values(), key=lambda g: -g.score)


def _split_by_section(group: _Group) -> list[_Group]:
    """A group spread over sections with their own ids (#main and #sidebar, #press and
    #events, alike inside) is one group per section."""
    sections: dict[str, list[Any]] = {}
    for block in group.blocks:
        named = ""
        for ancestor in block.iterancestors():
            if ancestor is group.container:
                break
            element_id = ancestor.get("id") or ""
            if _CSS_IDENT.match(element_id) and not any(c.isdigit() for c in element_id):
                named = element_id
        sections.setdefault(named, []).append(block)
    # Only a section named as a side part splits (months or topics of one list stay one).
    side = _NAV_WORDS | _ASIDE_WORDS | _FRAME_WORDS | _SOCIAL_WORDS
    if len(sections) < 2 or not any(
        not side.isdisjoint(w.lower() for w in _TOKENS.split(name) if w) for name in sections
    ):
        return [group]
    parts = []
    for blocks in sections.values():
        if len(blocks) < MIN_ITEMS:
            continue
        above = set(blocks)
        while len(above) > 1:
            above = {b.getparent() for b in above}
        container = above.pop()
        parts.append(_Group(blocks, container, {b: group.members[b] for b in blocks}))
    return parts


# ---------------------------------------------------------------- selectors


def _anchors(container: Any) -> list[str]:
    """Selectors for the container: its id, its classes, then its parent's and so on."""
    found: list[str] = []
    bare: list[str] = []  # by tags alone: the last resort
    node: Any = container
    suffix = ""
    for _ in range(4):
        if node is None or _tag(node) in _STOP_AT:
            break
        element_id = node.get("id") or ""
        if element_id and _CSS_IDENT.match(element_id) and not any(c.isdigit() for c in element_id):
            found.append(f"#{element_id}{suffix}")
            break
        classes = _stable_classes(node)
        if classes:
            found.append(key_of(node, 2) + suffix)
        else:
            bare.append(_tag(node) + suffix)
        suffix = f" > {key_of(node, 2) if classes else _tag(node)}{suffix}"
        node = node.getparent()
    return found + bare


def _item_selector(document: Any, group: _Group) -> str:
    """The first selector that picks exactly the blocks: their class alone when it has one,
    else down from the nearest common container with child combinators; else the closest."""
    chain = []
    node = group.blocks[0]
    while node is not None and node is not group.container:
        chain.append(key_of(node))
        node = node.getparent()
    chain.reverse()
    wanted = set(group.blocks)
    last = chain[-1]
    candidates = []
    if "." in last:
        candidates.append(last)
    down = " > ".join(chain)
    candidates += [f"{anchor} > {down}" for anchor in _anchors(group.container)]
    if len(chain) > 1:
        candidates.append(f"{chain[-2]} > {last}")
    candidates.append(f"{key_of(group.container)} > {down}")
    best, best_score = candidates[-1], -1.0
    for candidate in candidates:
        try:
            matched = set(select(document, candidate))
        except SourceError:
            continue
        score = len(matched & wanted) / len(matched | wanted) if matched else 0.0
        if score > best_score + 1e-9:
            best, best_score = candidate, score
        if score == 1.0:
            break
    return best


def _position(element: Any) -> int:
    parent = element.getparent()
    if parent is None:
        return 1
    return _elements(parent).index(element) + 1


def _same_tag_siblings(element: Any) -> bool:
    parent = element.getparent()
    tag = element.tag
    return parent is not None and sum(1 for c in parent if c.tag == tag) > 1


def _relative_candidates(block: Any, target: Any) -> list[str]:
    chain = [target]
    for ancestor in target.iterancestors():
        if ancestor is block:
            break
        chain.append(ancestor)
    keys = [key_of(e) for e in chain]
    candidates = [keys[0], _tag(target)]
    if len(keys) > 1:
        candidates.append(f"{keys[1]} {keys[0]}")
        candidates.append(f"{_tag(chain[1])} {keys[0]}")
    candidates.append(" ".join(reversed(keys)))
    # By position, for parts told apart only by where they are (a table's third column).
    steps = []
    for element in reversed(chain):
        if _same_tag_siblings(element):
            steps.append(f"{_tag(element)}:nth-child({_position(element)})")
        else:
            steps.append(key_of(element))
    candidates.append(" > ".join(steps))
    for at, element in enumerate(chain):
        if _same_tag_siblings(element):
            placed = f"{_tag(element)}:nth-child({_position(element)})"
            below = " > ".join(reversed(keys[:at]))
            candidates.append(f"{placed} > {below}" if below else placed)
            break
    return list(dict.fromkeys(candidates))


def _best_part_selector(
    pairs: list[tuple[Any, Any | None]],
    minimum: float,
    contain: bool = False,
    avoid: dict[Any, Any] | None = None,
) -> str | None:
    """The selector that finds the target in most blocks and something else in fewest.

    With `contain`, an element holding the target counts too (a date line holding a
    <time> in one item and plain text in the next is one selector for both), unless it
    also holds the block's `avoid` element (its title).
    """
    avoid = avoid or {}

    def holds_avoided(block: Any, element: Any) -> bool:
        other = avoid.get(block)
        return other is not None and (other is element or other in element.iterdescendants())

    with_target = [(b, t) for b, t in pairs if t is not None]
    if not with_target or len(with_target) < minimum * len(pairs):
        return None
    candidates: dict[str, None] = {}
    for block, target in with_target[:12]:
        holders = [target]
        if contain:
            holders += [
                a
                for a in target.iterancestors()
                if block in a.iterancestors() and not holds_avoided(block, a)
            ]
        for holder in holders:
            for candidate in _relative_candidates(block, holder):
                candidates[candidate] = None
    best: tuple[int, int, int, str] | None = None
    for candidate in candidates:
        score = 0
        for block, target in pairs:
            found = select_one(block, candidate)
            if target is not None and (
                found is target
                or (
                    contain
                    and found is not None
                    and target in found.iter()
                    and not holds_avoided(block, found)
                )
            ):
                score += 2
            elif found is not None:
                score -= 1
        # Ties go to the selector naming a class: it says what the part is, not where.
        ranked = (score, candidate.count("."), -len(candidate), candidate)
        if best is None or ranked[:3] > best[:3]:
            best = ranked
    if best is None or best[0] < len(with_target):
        return None
    return best[3]


# ---------------------------------------------------------------- parts of a block


def _title_candidates(page: _Page, block: Any) -> list[tuple[Any, Any, str, str | None]]:
    """(element, headline element, text, url) of the links and link-less headings of a block."""
    found = []
    for element in block.iter("a", *_HEADING):
        if is_hidden(element):
            continue
        if _tag(element) == "a":
            href = (element.get("href") or "").strip()
            if not href or href.lower().startswith(_NOT_LINKS):
                continue
            title = _title_target(element)
            url: str | None = href.split("#", 1)[0]
        else:
            if element.find(".//a[@href]") is not None or any(
                _tag(a) == "a" for a in element.iterancestors()
            ):
                continue
            title, url = element, None
        text = one_line(visible_text(title))
        if text:
            found.append((element, title, text, url))
    return found


def _relative_path(block: Any, element: Any) -> tuple[str, ...]:
    """The element's kinds from the block down, each with its rank among like siblings (so
    a row's second cell is not its first)."""
    steps = []
    for node in (element, *element.iterancestors()):
        if node is block:
            break
        key = key_of(node)
        tag = node.tag
        rank = sum(
            1 for s in node.itersiblings(tag, preceding=True) if s.tag == tag and key_of(s) == key
        )
        steps.append(f"{key}#{rank}")
    return tuple(reversed(steps))


@dataclass(slots=True)
class _Slot:
    """The best title slot of some blocks: block -> (rank, element, headline, text, url)."""

    entries: dict[Any, tuple[int, Any, Any, str, str | None]]
    score: float
    distinct: float
    texts: float
    headline: float
    marked: float
    meta: float


def _title_slot(page: _Page, blocks: list[Any]) -> _Slot | None:
    """The slot (a path from the block) whose links or headings best read as the titles."""
    slots: dict[tuple[str, ...], dict[Any, tuple[int, Any, Any, str, str | None]]] = {}
    for block in blocks:
        for index, (element, title, text, url) in enumerate(_title_candidates(page, block)):
            slot = slots.setdefault(_relative_path(block, element), {})
            slot.setdefault(block, (index, element, title, text, url))
    best: _Slot | None = None
    for found in slots.values():
        entries = list(found.items())
        coverage = len(entries) / len(blocks)
        urls = [e[4] for _b, e in entries if e[4] is not None]
        if urls:
            distinct = len(set(urls)) / len(urls)
        else:  # headings: the block's own link tells the items apart
            distinct = _link_distinct(page, [(b, e[1]) for b, e in entries])
        texts = len({e[3].casefold() for _b, e in entries}) / len(entries)
        headline = sum(_headline_score(e[3]) for _b, e in entries) / len(entries)
        marked = sum(_in_heading(e[2], b) for b, e in entries) / len(entries)
        meta = sum(_meta_part(e[1], b) for b, e in entries) / len(entries)
        order = sum(e[0] for _b, e in entries) / len(entries)
        score = (
            coverage
            * (0.2 + 0.8 * distinct * texts)
            * (1 + 1.5 * marked + headline)
            * (1 - 0.8 * meta)
            / (1 + 0.05 * order)
        )
        if best is None or score > best.score:
            best = _Slot(found, score, distinct, texts, headline, marked, meta)
    return best


def _titles(page: _Page, blocks: list[Any]) -> dict[Any, Any]:
    """block -> its headline element, from the slot that best reads as the blocks' titles."""
    slot = _title_slot(page, blocks)
    return {b: e[2] for b, e in slot.entries.items()} if slot else {}


def _plain_title(title: Any, block: Any) -> Any:
    """The nearest block around a title link with the same text (a table cell's paragraph):
    its path finds the title of a row that has no link."""
    text = one_line(element_text(title))
    for ancestor in title.iterancestors():
        if ancestor is block or one_line(element_text(ancestor)) != text:
            break
        if _tag(ancestor) in _BLOCK_TAGS:
            return ancestor
    return title


def _steps(block: Any, element: Any) -> list[tuple[str, int]]:
    steps = []
    for node in (element, *element.iterancestors()):
        if node is block:
            break
        steps.append((str(node.tag), _position(node)))
    return list(reversed(steps))


def _follow(block: Any, steps: list[tuple[str, int]]) -> Any | None:
    node = block
    for tag, position in steps:
        children = _elements(node)
        if position > len(children) or children[position - 1].tag != tag:
            return None
        node = children[position - 1]
    return node


def _title_pairs(page: _Page, blocks: list[Any]) -> list[tuple[Any, Any | None]]:
    titles = _titles(page, blocks)
    pairs = [(b, titles.get(b)) for b in blocks]
    missing = [b for b, t in pairs if t is None]
    if not missing or not titles:
        return pairs
    # Rows with a title but no link: the title's text holder sits where it sits in the others.
    steps = Counter(
        tuple(_steps(b, _plain_title(t, b))) for b, t in pairs if t is not None and t.tag == "a"
    ).most_common(1)
    if not steps:
        return pairs
    path = list(steps[0][0])
    filled = []
    for block, title in pairs:
        if title is None:
            holder = _follow(block, path)
            if holder is not None and one_line(visible_text(holder)) and _tag(holder) != "th":
                title = holder
        elif title.tag == "a":
            holder = _follow(block, path)
            title = title if holder is None else holder
        filled.append((block, title))
    return filled


def _date_element(block: Any, title: Any | None, language: str | None) -> Any | None:
    time = block.find(".//time")
    if time is not None and (time.get("datetime") or time.text_content().strip()):
        return time
    for count, element in enumerate(block.iter()):
        if count > 300:
            break
        if not isinstance(element.tag, str) or element is block:
            continue
        if title is not None and (element is title or title in element.iterdescendants()):
            continue  # a date inside the title (a span in the link) is the date
        raw = element.text_content()
        if len(raw) > 400:
            continue
        text = one_line(raw)
        if 6 <= len(text) <= 60 and _DATEISH.search(text) and parse_date(text, language):
            # The innermost element holding the date: its children hold less.
            inner = [c for c in element if isinstance(c.tag, str) and c.text_content().strip()]
            if not any(parse_date(one_line(c.text_content()), language) for c in inner):
                return element
    return None


def _summary_element(page: _Page, block: Any, title: Any | None, date: Any | None) -> Any | None:
    best: tuple[int, Any] | None = None
    for element in block.iter("p", "div", "span", "dd", "section", "blockquote", "td"):
        if element is block or is_hidden(element):
            continue
        if title is not None and (element is title or title in element.iterdescendants()):
            continue
        if date is not None and (element is date or date in element.iterdescendants()):
            continue
        length = len(" ".join(element.text_content().split()))
        if length >= 40 and (best is None or length > best[0]):
            best = (length, element)
    return best[1] if best else None


def _parts(page: _Page, blocks: list[Any]) -> tuple[dict[str, str | None], float]:
    """Title, date and summary selectors for the blocks, and the share of blocks with a date."""
    sample = _spread_sample(blocks, 40)
    titles = _title_pairs(page, sample)
    title_of = dict(titles)
    title = _best_part_selector(titles, minimum=0.5)
    dates = {b: _date_element(b, title_of.get(b), page.language) for b in sample}
    date = _best_part_selector(list(dates.items()), 0.25, contain=True, avoid=title_of)
    summaries = [(b, _summary_element(page, b, title_of.get(b), dates.get(b))) for b in sample]
    summary = _best_part_selector(summaries, 0.25, contain=True, avoid=title_of)
    dated = sum(d is not None for d in dates.values()) / len(sample) if date else 0.0
    summed = sum(s is not None for s in summaries) / len(sample) if summary else 0.0
    parts = {
        "title": title,
        "link": _link_selector(page, titles),
        "date": date,
        "summary": summary,
        "date_order": _date_order(page, sample, date),
    }
    return parts, dated + 0.5 * summed


def _has_link(element: Any) -> bool:
    return (
        _tag(element) == "a"
        or element.find(".//a[@href]") is not None
        or any(_tag(a) == "a" for a in element.iterancestors())
    )


def _link_slot(
    page: _Page, titles: list[tuple[Any, Any]]
) -> tuple[float, float, list[tuple[Any, Any | None]]] | None:
    """The block's own link, for titles that are not links: (score, distinct share, pairs).
    Its address differs from block to block; it points into the site; it often comes twice
    (a timestamp and a comments link); it is rarely a link in the running text."""
    host = urlsplit(page.base).netloc
    slots: dict[tuple[str, ...], dict[Any, tuple[Any, str]]] = {}
    repeated: Counter[tuple[str, ...]] = Counter()
    for block, _title in titles:
        hrefs: Counter[str] = Counter()
        links = []
        for link in block.iter("a"):
            href = (link.get("href") or "").strip().split("#", 1)[0]
            if href and not href.lower().startswith(_NOT_LINKS) and not is_hidden(link):
                hrefs[href] += 1
                links.append((link, href))
        for link, href in links:
            path = _relative_path(block, link)
            if block not in slots.setdefault(path, {}):
                slots[path][block] = (link, href)
                repeated[path] += hrefs[href] > 1
    best: tuple[float, float, list[tuple[Any, Any | None]]] | None = None
    for path, found in slots.items():
        addresses = [href for _link, href in found.values()]
        distinct = len(set(addresses)) / len(addresses)
        inside = sum(urlsplit(h).netloc in ("", host) for h in addresses) / len(addresses)
        score = (
            len(found)
            / len(titles)
            * distinct**2
            * (0.5 + 0.5 * inside)
            * (1 + 0.5 * repeated[path] / len(found))
        )
        if best is None or score > best[0]:
            pairs = [(b, found[b][0] if b in found else None) for b, _t in titles]
            best = (score, distinct, pairs)
    return best


def _link_distinct(page: _Page, titles: list[tuple[Any, Any]]) -> float:
    found = _link_slot(page, titles)
    return found[1] if found else 0.0


def _link_selector(page: _Page, titles: list[tuple[Any, Any | None]]) -> str | None:
    """When most titles are not links (a heading, the link elsewhere in the block)."""
    with_title = [(b, t) for b, t in titles if t is not None]
    if not with_title or sum(_has_link(t) for _b, t in with_title) >= 0.5 * len(with_title):
        return None
    found = _link_slot(page, with_title)
    if found is None or found[0] < 0.3:
        return None
    return _best_part_selector(found[2], minimum=0.5)


def _date_order(page: _Page, blocks: list[Any], date: str | None) -> str | None:
    """MDY or DMY when the page's numeric dates tell (a 19 can only be a day)."""
    if not date:
        return None
    firsts = seconds = 0
    for block in blocks:
        element = select_one(block, date)
        match = NUMERIC_DATE.search(element.text_content()) if element is not None else None
        if match:
            firsts += int(match.group(1)) > 12
            seconds += int(match.group(2)) > 12
    if seconds and not firsts:
        return "MDY"
    lang = (page.document.get("lang") or "").lower().replace("_", "-")
    if not firsts and lang == "en-us" and not page.language:
        return "MDY"
    return None


# ---------------------------------------------------------------- flat lists


def _run_start(group: _Group) -> str | None:
    """For blocks that are siblings with their other parts between them (heading, date,
    summary, rule, heading ...): the selector of the element each item starts with."""
    container = group.container
    if any(b.getparent() is not container for b in group.blocks):
        return None
    children = _elements(container)
    index = {id(c): i for i, c in enumerate(children)}
    at = [index[id(b)] for b in group.blocks]
    gaps = [children[a + 1 : b] for a, b in itertools.pairwise(at)]
    if not gaps or sum(len(g) for g in gaps) < len(gaps):
        return None
    # The longest run of kinds that ends every gap and also stands right before the first block.
    before = [key_of(c) for c in children[: at[0]]]
    lead = 0
    while True:
        size = lead + 1
        tails = {tuple(key_of(c) for c in g[-size:]) for g in gaps if len(g) >= size}
        if len(tails) != 1 or any(len(g) < size for g in gaps):
            break
        if tuple(before[-size:]) != next(iter(tails)) or len(before) < size:
            break
        lead = size
    start = group.blocks[0] if lead == 0 else children[at[0] - lead]
    parent_key = key_of(container)
    anchors = _anchors(container) or [parent_key]
    return f"{anchors[0]} > {key_of(start)}"


# ---------------------------------------------------------------- the answer


def _next_selector(page: _Page) -> str | None:
    if select_one(page.document, ", ".join(_NEXT_SELECTORS)) is not None:  # one pass, mostly
        for candidate in _NEXT_SELECTORS:
            element = select_one(page.document, candidate)
            if element is not None and element.get("href"):
                return candidate
    for found in page.links:
        if len(found.raw_text) > 20:
            continue
        link = found.element
        if " ".join(found.raw_text.split()).lower() in _NEXT_TEXT:
            parent = link.getparent()
            if _stable_classes(link):
                return key_of(link)
            if parent is not None and _stable_classes(parent):
                return f"{key_of(parent)} a"
            raw = one_line(element_text(link)).replace('"', "")
            return f'a:contains("{raw}")'
    return None


def _selectors_for(page: _Page, group: _Group, next_: str | None) -> tuple[Selectors, float]:
    item = _item_selector(page.document, group)
    selectors = Selectors(item=item, next=next_, inferred=True)
    blocks = item_blocks(page.document, selectors) or group.blocks
    parts, found = _parts(page, blocks)
    start = _run_start(group)
    if start is not None:
        flat = Selectors(item=start, siblings=True, next=next_, inferred=True)
        segments = item_blocks(page.document, flat)
        if len(segments) >= MIN_ITEMS:
            flat_parts, flat_found = _parts(page, segments)
            if flat_parts["title"] and flat_found >= found + 0.25:
                selectors, parts, found = flat, flat_parts, flat_found
    selectors.title = parts["title"]
    selectors.link = parts["link"]
    selectors.date = parts["date"]
    selectors.summary = parts["summary"]
    selectors.date_order = parts["date_order"]
    return selectors, found


def infer_candidates(
    document: Any, url: str, language: str | None = None, limit: int = CANDIDATES
) -> list[Selectors]:
    """The best selector sets for the page's repeated item blocks, best first (at most
    `limit`, each with a different item selector); SourceError when there are none."""
    page = _Page(document, url, language)
    groups = _groups(page)
    if not groups:
        raise SourceError("no repeated news items found on the page (give --item and --title)")
    next_ = _next_selector(page)
    ranked: dict[str, tuple[float, Selectors]] = {}
    for group in groups[:_SCORED_FULLY]:
        if group.score < 0.25 * groups[0].score:
            break
        selectors, found = _selectors_for(page, group, next_)
        if not selectors.title:
            continue
        score = group.score * (1 + 0.5 * found)
        if selectors.item not in ranked or ranked[selectors.item][0] < score:
            ranked[selectors.item] = (score, selectors)
    if not ranked:
        raise SourceError("no repeated news items found on the page (give --item and --title)")
    best = sorted(ranked.values(), key=lambda pair: -pair[0])
    return [selectors for _score, selectors in best[:limit]]


def infer_selectors(document: Any, url: str, language: str | None = None) -> Selectors:
    """Selectors for the page's repeated item blocks; SourceError when there are none."""
    return infer_candidates(document, url, language, limit=1)[0]
