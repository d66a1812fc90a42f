"""Find the repeated news blocks of a listing page without being told, and say how (selectors).

The idea: links whose text reads like a headline are item titles; the largest element around
each that holds no other headline is its block; the block shape most titles share is the item
selector. Inside the blocks, the date, summary and title selectors are the shortest ones that
pick the same part in most blocks and little else. The user sees the selectors and can keep or
correct them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from digest.sources.errors import SourceError
from digest.sources.listing import Selectors, base_of, select, select_one
from digest.sources.normalise import absolute_url, canonical_url, element_text, one_line, parse_date

MIN_ITEMS = 2
_SKIP_ANCESTORS = {"nav", "header", "footer", "aside", "form", "menu"}
_SKIP_CLASS = re.compile(
    r"(^|[-_\s])(nav|navbar|menu|breadcrumbs?|pager|pagination|footer|header|sidebar|share|social"
    r"|cookie|skip)([-_\s]|$)",
    re.IGNORECASE,
)
_NOT_TITLES = re.compile(
    r"^(read more|more|continue reading|next|previous|see all|view all|all news|en savoir plus"
    r"|lire la suite|suite|weiterlesen|mehr|leer más|ver más)\b",
    re.IGNORECASE,
)
_STATE_CLASSES = {
    "first", "last", "odd", "even", "active", "current", "selected", "clearfix", "row",
    "is-active", "is-first", "is-last", "featured", "sticky", "new", "hidden",
}  # fmt: skip
_CSS_IDENT = re.compile(r"^-?[_a-zA-Z][_a-zA-Z0-9-]*$")
# In rank order: a link holding two headings is titled by the higher one.
_HEADING = ("h1", "h2", "h3", "h4", "h5", "h6")
_STOP_AT = {"body", "html", "main"}
_DATEISH = re.compile(
    r"\d{4}|\d{1,2}[./-]\d{1,2}[./-]\d{2}|(jan|feb|m[aä]r|apr|ma[iy]|jun|jul|aug|sep|o[ck]t|nov|d[eé]c"
    r"|janv|févr|avr|juil|août|déc)",
    re.IGNORECASE,
)
_NEXT_SELECTORS = (
    'a[rel~="next"]', 'link[rel~="next"]', "li.next a", "li.pager-next a", "a.next",
    "a.next-page", ".pagination .next a", ".pager__item--next a",
)  # fmt: skip
_NEXT_TEXT = {"next", "next page", "next ›", "next »", "›", "»", "suivant", "page suivante",
              "weiter", "siguiente", "older posts", "older entries", "more news"}  # fmt: skip


def _stable_classes(element: Any) -> list[str]:
    return [
        c
        for c in (element.get("class") or "").split()
        if _CSS_IDENT.match(c) and not any(ch.isdigit() for ch in c) and c not in _STATE_CLASSES
    ]


def key_of(element: Any, classes: int = 1) -> str:
    """A CSS selector for an element's kind: its tag and its first stable class."""
    tag = str(element.tag).lower()
    return tag + "".join(f".{c}" for c in _stable_classes(element)[:classes])


def _skipped(link: Any) -> bool:
    for ancestor in link.iterancestors():
        tag = str(ancestor.tag).lower()
        if tag in _SKIP_ANCESTORS or ancestor.get("role") in ("navigation", "banner"):
            return True
        if _SKIP_CLASS.search(ancestor.get("class") or "") or _SKIP_CLASS.search(
            ancestor.get("id") or ""
        ):
            return True
    return False


def _reads_like_headline(text: str) -> bool:
    if _NOT_TITLES.match(text):
        return False
    if any(ord(ch) >= 0x2E80 for ch in text):  # CJK scripts write headlines without spaces
        return len(text) >= 5
    return len(text) >= 12 and len(text.split()) >= 2


def _headline_links(document: Any, base: str) -> list[tuple[Any, str]]:
    """(link, canonical href) of the links that read like headlines, in page order."""
    found = []
    for link in document.iter("a"):
        href = absolute_url(link.get("href"), base, local_ok=base.startswith("file:"))
        if href is None:
            continue
        text = one_line(element_text(link))
        if not _reads_like_headline(text):
            continue
        if _skipped(link):
            continue
        found.append((link, canonical_url(href) or href))
    return found


def _title_score(link: Any) -> tuple[int, int]:
    in_heading = any(str(a.tag).lower() in _HEADING for a in link.iterancestors())
    has_heading = any(link.find(f".//{h}") is not None for h in _HEADING)
    titled = (
        "title" in (link.get("class") or "").lower()
        or "headline" in (link.get("class") or "").lower()
    )
    return (int(in_heading or has_heading or titled), len(element_text(link)))


def _blocks(links: list[tuple[Any, str]]) -> dict[Any, Any]:
    """For each headline link, the largest ancestor holding no other headline: block -> link."""
    hrefs: dict[Any, set[str]] = {}
    for link, href in links:
        for element in [link, *link.iterancestors()]:
            hrefs.setdefault(element, set()).add(href)
    blocks: dict[Any, Any] = {}
    for link, _href in links:
        block = link
        for ancestor in link.iterancestors():
            if str(ancestor.tag).lower() in _STOP_AT or len(hrefs[ancestor]) > 1:
                break
            block = ancestor
        current = blocks.get(block)
        if current is None or _title_score(link) > _title_score(current):
            blocks[block] = link
    return blocks


def _lift(blocks: list[Any]) -> list[Any]:
    """Grow all blocks to their parents while each parent still holds exactly one block."""
    while True:
        parents = [block.getparent() for block in blocks]
        if any(p is None or str(p.tag).lower() in _STOP_AT for p in parents):
            return blocks
        if len({id(p) for p in parents}) != len(parents):
            return blocks
        blocks = parents


def _item_key(blocks: list[Any]) -> str:
    """The tag.class most blocks share (a class only when it covers as many as the tag)."""
    counts: Counter[str] = Counter()
    for block in blocks:
        tag = str(block.tag).lower()
        counts[tag] += 1
        for cls in _stable_classes(block):
            counts[f"{tag}.{cls}"] += 1
    best = max(counts.items(), key=lambda kv: (kv[1], "." in kv[0], -len(kv[0])))
    return best[0]


def _container_selectors(blocks: list[Any], key: str) -> list[str]:
    """`key` alone, then qualified by ancestors with an id or a class that hold all blocks."""
    candidates = [key]
    common = set(blocks[0].iterancestors())
    for block in blocks[1:]:
        common &= set(block.iterancestors())
    for ancestor in blocks[0].iterancestors():
        if ancestor not in common:
            continue
        element_id = ancestor.get("id") or ""
        if element_id and _CSS_IDENT.match(element_id):
            candidates.append(f"#{element_id} {key}")
        elif _stable_classes(ancestor):
            candidates.append(f"{key_of(ancestor)} {key}")
    return candidates


def _best_item_selector(document: Any, blocks: list[Any], key: str) -> str:
    wanted = set(blocks)
    best, best_score = key, -1.0
    for candidate in _container_selectors(blocks, key):
        matched = set(select(document, candidate))
        if not matched:
            continue
        score = len(matched & wanted) / len(matched | wanted)
        if score > best_score + 1e-9:
            best, best_score = candidate, score
        if score == 1.0:
            break
    return best


def _relative_candidates(block: Any, target: Any) -> list[str]:
    chain = [target]
    for ancestor in target.iterancestors():
        if ancestor is block:
            break
        chain.append(ancestor)
    keys = [key_of(e) for e in chain]
    candidates = [keys[0], str(target.tag).lower()]
    if len(keys) > 1:
        candidates.append(f"{keys[1]} {keys[0]}")
        candidates.append(f"{str(chain[1].tag).lower()} {keys[0]}")
    candidates.append(" ".join(reversed(keys)))
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
        return other is not None and other in element.iter()

    with_target = [(b, t) for b, t in pairs if t is not None]
    if not with_target or len(with_target) < minimum * len(pairs):
        return None
    candidates: dict[str, None] = {}
    for block, target in with_target[:20]:
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


def _date_element(block: Any, title_link: Any, language: str | None) -> Any | None:
    time = block.find(".//time")
    if time is not None:
        return time
    for element in block.iter():
        if not isinstance(element.tag, str) or element is title_link:
            continue
        if title_link in element.iterdescendants() or element in title_link.iterancestors():
            continue
        text = one_line(element_text(element))
        if 6 <= len(text) <= 60 and _DATEISH.search(text) and parse_date(text, language):
            # The innermost element holding the date: its children hold less.
            inner = [c for c in element if isinstance(c.tag, str) and element_text(c).strip()]
            if not any(parse_date(one_line(element_text(c)), language) for c in inner):
                return element
    return None


def _summary_element(block: Any, title_link: Any, date: Any | None) -> Any | None:
    best: tuple[int, Any] | None = None
    for element in block.iter("p", "div", "span", "dd", "section", "blockquote"):
        if element is block or title_link in element.iterdescendants():
            continue
        if date is not None and (element is date or date in element.iterdescendants()):
            continue
        length = len(one_line(element_text(element)))
        if length >= 40 and (best is None or length > best[0]):
            best = (length, element)
    return best[1] if best else None


def _title_target(link: Any) -> Any:
    # A card whose link wraps label and heading: the heading alone is the title.
    for heading in _HEADING:
        inner = link.find(f".//{heading}")
        if inner is not None:
            return inner
    return link


def _next_selector(document: Any) -> str | None:
    for candidate in _NEXT_SELECTORS:
        element = select_one(document, candidate)
        if element is not None and element.get("href"):
            return candidate
    for link in document.iter("a"):
        text = one_line(element_text(link)).lower()
        if link.get("href") and text in _NEXT_TEXT:
            parent = link.getparent()
            if _stable_classes(link):
                return key_of(link)
            if parent is not None and _stable_classes(parent):
                return f"{key_of(parent)} a"
            raw = one_line(element_text(link)).replace('"', "")
            return f'a:contains("{raw}")'
    return None


def infer_selectors(document: Any, url: str, language: str | None = None) -> Selectors:
    """Selectors for the page's repeated item blocks; SourceError when there are none."""
    base = base_of(document, url)
    links = _headline_links(document, base)
    by_block = _blocks(links)
    if len(by_block) < MIN_ITEMS:
        raise SourceError("no repeated news items found on the page (give --item and --title)")
    # The shape most headlines share wins; headlines in headings count a little more, so a
    # repeated category link ("Social economy") never outvotes the titles.
    groups: dict[str, list[Any]] = {}
    for block in by_block:
        groups.setdefault(str(block.tag).lower(), []).append(block)
    chosen = max(
        groups.values(),
        key=lambda blocks: sum(1 + 0.5 * _title_score(by_block[b])[0] for b in blocks),
    )
    blocks = _lift(chosen)
    if len(blocks) < MIN_ITEMS:
        raise SourceError("no repeated news items found on the page (give --item and --title)")
    item = _best_item_selector(document, blocks, _item_key(blocks))
    # Inside each (lifted) block, the best headline is the title: a heading's link first.
    headline_links = {id(link) for link, _href in links}
    title_links = {}
    for block in blocks:
        inside = [a for a in block.iter("a") if id(a) in headline_links]
        title_links[block] = max(inside, key=_title_score)
    titles = [(b, _title_target(title_links[b])) for b in blocks]
    title = _best_part_selector(titles, minimum=0.5)
    dates = {b: _date_element(b, title_links[b], language) for b in blocks[:40]}
    date = _best_part_selector(list(dates.items()), 0.25, contain=True, avoid=title_links)
    summaries = [(b, _summary_element(b, title_links[b], dates.get(b))) for b in blocks[:40]]
    summary = _best_part_selector(summaries, 0.25, contain=True, avoid=title_links)
    return Selectors(
        item=item,
        title=title,
        date=date,
        summary=summary,
        next=_next_selector(document),
        inferred=True,
    )
