"""Agreement of `digest sources try` with rss-parser's expected items.

    python benchmarks/conformance.py [DIR]     (DIR defaults to ../shared/conformance/rss-parser)

Per item, in document order: the count, the title (one-line plain text), the link (trimmed; a
relative expected link agrees when it resolves to ours) and isoDate against published_at as the
same instant, as DIR/README.md says. Files rss-parser reads with the wrong encoding are
reported but excepted from the headline ratio, as the README documents. Prints the
mismatches per file, then one JSON line.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digest.config import get_settings  # noqa: E402
from digest.sources.errors import SourceError  # noqa: E402
from digest.sources.parsed import ParsedItem  # noqa: E402
from digest.sources.reader import read_once  # noqa: E402
from digest.sources.text import clean_title  # noqa: E402

# rss-parser reads every file as UTF-8 (README: "a correct reader ... differs there on purpose").
ENCODING_CASES = {"encoding.rss", "latin2.rss", "encoding-gb2312.xml", "uolNoticias.rss"}
NOT_A_FEED = "unrecognized.rss"


def expected_items(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # outputs of non-UTF-8 inputs keep their bytes
    items: list[dict[str, Any]] = json.loads(text)["feed"]["items"]
    return items


def instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def differences(expected: dict[str, Any], ours: ParsedItem) -> list[str]:
    found = []
    title = clean_title(expected["title"]) if expected.get("title") is not None else None
    if title != (ours.title or None):
        found.append(f"title {title!r} != {ours.title!r}")
    link = expected["link"].strip() if expected.get("link") else None
    same_link = link == ours.url or (
        link is not None and ours.url is not None and urljoin(ours.url, link) == ours.url
    )
    if not same_link:
        found.append(f"link {link!r} != {ours.url!r}")
    if instant(expected.get("isoDate")) != ours.published_at:
        found.append(f"date {expected.get('isoDate')!r} != {ours.published_at}")
    return found


def main(argv: list[str]) -> int:
    folder = (
        Path(argv[1]) if len(argv) > 1 else ROOT.parent / "shared" / "conformance" / "rss-parser"
    )
    inputs = sorted((folder / "input").iterdir())
    totals = {"items": 0, "agree": 0, "all_items": 0, "all_agree": 0}
    unrecognized_error = None
    for path in inputs:
        name = path.name
        output = folder / "output" / f"{path.stem}.json"
        try:
            ours = read_once(str(path), settings=get_settings()).items
        except SourceError as exc:
            if name == NOT_A_FEED:
                unrecognized_error = str(exc)
                print(f"{name}: error as expected: {exc}")
            else:
                print(f"{name}: ERROR {exc}")
                if output.exists():
                    count = len(expected_items(output))
                    totals["all_items"] += count
                    totals["items"] += 0 if name in ENCODING_CASES else count
            continue
        if name == NOT_A_FEED:
            print(f"{name}: MISMATCH: read as {len(ours)} items instead of an error")
            continue
        if not output.exists():
            print(f"{name}: no expected output, {len(ours)} items")
            continue
        expected = expected_items(output)
        excepted = name in ENCODING_CASES
        agree = 0
        problems = []
        if len(ours) != len(expected):
            problems.append(f"count {len(expected)} expected, {len(ours)} read")
        for index, wanted in enumerate(expected):
            if index >= len(ours):
                problems.append(f"item {index}: missing")
                continue
            diff = differences(wanted, ours[index])
            if diff:
                problems.append(f"item {index}: " + "; ".join(diff))
            else:
                agree += 1
        totals["all_items"] += len(expected)
        totals["all_agree"] += agree
        if not excepted:
            totals["items"] += len(expected)
            totals["agree"] += agree
        label = " (encoding case, excepted)" if excepted else ""
        print(f"{name}: {agree}/{len(expected)} agree{label}")
        for problem in problems[:5]:
            print(f"    {problem}")
        if len(problems) > 5:
            print(f"    ... {len(problems) - 5} more")
    result = {
        "items": totals["items"],
        "agree": totals["agree"],
        "ratio": round(totals["agree"] / totals["items"], 4) if totals["items"] else 0.0,
        "all_items": totals["all_items"],
        "all_agree": totals["all_agree"],
        "all_ratio": round(totals["all_agree"] / totals["all_items"], 4)
        if totals["all_items"]
        else 0.0,
        "unrecognized_is_error": unrecognized_error is not None,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
