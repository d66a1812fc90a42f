"""Listing pages without selectors: detection time on a 1 MB page, and the own test set's figures.

    python benchmarks/listing.py [--repeat 5] [--pages DIR]

The 1 MB page is made here (dense markup: a navigation bar, a sidebar, a footer and 300
full-text posts whose paragraphs are full of links), so the time covers the worst kind of page
rather than one padded with scripts. Detection is `infer_selectors` on the parsed page (parsing
is timed apart), in wall time and in CPU time (the same on an idle machine; on a shared one the
wall time also counts the waits for a core). Then every page of DIR
(tests/fixtures/sources/listings: pages made to reproduce what went wrong on real sites,
each with a JSON of the items a reader sees) is read
with inferred selectors and scored like the conformance check: an item is right when its link
and its title match; recall = right / expected, precision = right / found. Prints one line per
page, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.sources.errors import SourceError  # noqa: E402
from digest.sources.infer import infer_selectors  # noqa: E402
from digest.sources.listing import parse_html, read_page  # noqa: E402
from digest.urls import canonical_url  # noqa: E402

PAGES = ROOT / "tests" / "fixtures" / "sources" / "listings"
TARGET_BYTES = 1_000_000


def big_page(target: int = TARGET_BYTES) -> bytes:
    """A dense listing page of about `target` bytes."""
    nav = "".join(f'<li><a href="/section/{n}">Section {n} of the site</a></li>' for n in range(20))
    side = "".join(f'<li><a href="/tag/{n}">A tag called number {n}</a></li>' for n in range(120))
    foot = "".join(f'<a href="/legal/{n}">Legal page number {n}</a> ' for n in range(40))
    head = (
        f'<html><head><meta charset="utf-8"><title>Big</title></head><body>'
        f'<header class="site-header"><nav><ul>{nav}</ul></nav></header>'
        f'<div class="layout"><main class="content"><div class="posts">'
    )
    tail = (
        f'</div></main><aside class="sidebar"><ul>{side}</ul></aside></div>'
        f"<footer>{foot}</footer></body></html>"
    )
    posts = []
    size = len(head) + len(tail)
    n = 0
    while size < target:
        paragraphs = "".join(
            f"<p>Paragraph {p} of post {n} says what happened, with "
            f'<a href="https://example.net/ref/{n}/{p}">a reference</a> and '
            f'<a href="/docs/{n}-{p}.pdf">a document</a> in the middle of its running text, '
            f"and goes on for a while so that the page weighs what real pages weigh.</p>"
            for p in range(6)
        )
        post = (
            f'<article class="post"><header class="entry-header"><h2 class="entry-title">'
            f'<a href="/posts/{n}">Post number {n} has a headline of a fair length</a></h2>'
            f'<div class="entry-meta"><time datetime="2024-03-{n % 28 + 1:02d}">'
            f'{n % 28 + 1} March 2024</time> by <a href="/author/{n % 7}">Author {n % 7}</a>'
            f'</div></header><div class="entry-content">{paragraphs}</div>'
            f'<footer class="entry-footer"><a href="/category/{n % 5}">Category {n % 5}</a>'
            f"</footer></article>"
        )
        posts.append(post)
        size += len(post)
        n += 1
    return (head + "".join(posts) + tail).encode()


def _title(value: str | None) -> str:
    return " ".join(unicodedata.normalize("NFKC", value or "").split()).casefold()


def score(expected: list[dict[str, Any]], found: list[Any]) -> dict[str, Any]:
    """Recall and precision of `found` (ParsedItems) against the expected items."""
    used: set[int] = set()
    right = dates_expected = dates_right = 0
    for want in expected:
        key = canonical_url(want["url"]) if want.get("url") else None
        match = None
        for index, item in enumerate(found):
            if index in used:
                continue
            if (key and item.guid == key) or (
                not key and not item.url and _title(item.title) == _title(want["title"])
            ):
                match = index
                break
        if match is None:
            continue
        used.add(match)
        item = found[match]
        if _title(item.title) == _title(want["title"]):
            right += 1
        if want.get("date"):
            dates_expected += 1
            published = item.published_at
            dates_right += bool(published and published.date().isoformat() == want["date"])
    return {
        "expected": len(expected),
        "found": len(found),
        "right": right,
        "recall": round(right / len(expected), 3) if expected else 0.0,
        "precision": round(right / len(found), 3) if found else 0.0,
        "dates": f"{dates_right}/{dates_expected}",
    }


def score_page(html: Path) -> dict[str, Any]:
    """Infer selectors for one fixture page, read it with them, score it."""
    truth = json.loads(html.with_suffix(".json").read_text(encoding="utf-8"))
    document = parse_html(html.read_bytes())
    try:
        selectors = infer_selectors(document, truth["page_url"])
    except Exception as exc:  # a figure for every page, whatever the code does
        return {**score(truth["items"], []), "error": str(exc)}
    items = read_page(document, truth["page_url"], selectors).items
    return {**score(truth["items"], items), "selectors": selectors.to_dict()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pages", type=Path, default=PAGES)
    args = parser.parse_args(argv)
    content = big_page()
    parse_ms, infer_ms, infer_cpu_ms = [], [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        document = parse_html(content)
        parsed, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(SourceError):  # finding nothing is timed all the same
            infer_selectors(document, "https://big.example.org/")
        parse_ms.append((parsed - started) * 1000)
        infer_ms.append((time.perf_counter() - parsed) * 1000)
        infer_cpu_ms.append((time.process_time() - cpu) * 1000)
    pages = {}
    for html in sorted(args.pages.glob("*.html")):
        result = score_page(html)
        pages[html.stem] = result
        ok = result["recall"] >= 0.9 and result["precision"] >= 0.9
        print(
            f"{html.stem:24} expected {result['expected']:3} found {result['found']:3} "
            f"right {result['right']:3} recall {result['recall']:.2f} "
            f"precision {result['precision']:.2f} dates {result['dates']:>7}"
            f"  {'ok' if ok else result.get('error', '')}",
            file=sys.stderr,
        )
    good = sum(1 for r in pages.values() if r["recall"] >= 0.9 and r["precision"] >= 0.9)
    print(
        json.dumps(
            {
                "page_bytes": len(content),
                "parse_ms_median": round(statistics.median(parse_ms), 1),
                "infer_ms_median": round(statistics.median(infer_ms), 1),
                "infer_ms_max": round(max(infer_ms), 1),
                # CPU time: what the wall time is on an idle machine (other work shares this one)
                "infer_cpu_ms_median": round(statistics.median(infer_cpu_ms), 1),
                "own_pages": len(pages),
                "own_pages_ok": good,
                "own_items_right": sum(r["right"] for r in pages.values()),
                "own_items_expected": sum(r["expected"] for r in pages.values()),
                "own_items_found": sum(r["found"] for r in pages.values()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
