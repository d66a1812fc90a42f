"""`digest sources try` and `add` on listing pages without selectors: the candidate selector
sets to pick from, a saved page's base URL, paging options with inferred selectors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Source
from tests.fixtures.sources.server import Page, SourceServer, serving

LISTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "listings"
NEWS = LISTINGS / "news_index_filters.html"  # a news list, a filter bar and a side list
BASE = "https://news.example.org/news/"


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        yield running


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`digest sources ARGS` through the real entry point: (exit code, stdout, stderr)."""
    from digest.cli import main

    capsys.readouterr()
    code = main(["sources", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_try_shows_the_candidates_and_takes_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "try", str(NEWS), "--kind", "html", "--base-url", BASE)
    assert code == 0, err
    assert "candidates (pick one with --candidate N):" in out
    assert '*1. 14 items: --item "div.listing > ul > li"' in out
    assert ' 2. 4 items: --item "ul.filters > li"' in out
    assert "- All news  https://news.example.org/news/" in out  # its first items
    # --json keeps stdout a JSON array of the chosen candidate's items.
    code, out, err = cli(
        capsys, "try", str(NEWS), "--kind", "html", "--base-url", BASE, "--candidate", "2", "--json"
    )
    assert code == 0, err
    assert [i["title"] for i in json.loads(out)][:2] == ["All news", "Press releases"]
    assert 'selectors (inferred): --item "ul.filters > li"' in err
    assert "*2. 4 items" in err


def test_base_url_resolves_a_saved_pages_links(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "try", str(NEWS), "--kind", "html", "--base-url", BASE, "--json")
    assert code == 0, err
    urls = [i["url"] for i in json.loads(out)]
    assert len(urls) == 14
    assert all(u.startswith("https://news.example.org/news/") for u in urls)
    code, _out, err = cli(capsys, "try", str(NEWS), "--base-url", "file:///etc/")
    assert code == 2 and err.startswith("error: --base-url must be an http(s) address")


def test_add_takes_the_chosen_candidate(
    db_url: str, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = cli(capsys, "add", str(NEWS), "--kind", "html", "--candidate", "2")
    assert code == 0, err
    source = session.scalar(select(Source))
    assert source is not None and source.selectors == {"item": "ul.filters > li", "title": "a"}
    code, _out, err = cli(capsys, "try", str(NEWS), "--kind", "html", "--candidate", "9")
    assert code == 2 and "there are 3 candidates: choose 1 to 3" in err


def numbered(start: int, count: int, next_href: str | None) -> bytes:
    items = "".join(
        f'<li><a href="/n/{n}">News number {n} of the listing</a>'
        f" <span>{n % 28 + 1} February 2024</span></li>"
        for n in range(start, start + count)
    )
    pager = f'<p class="more"><a href="{next_href}">Older news</a></p>' if next_href else ""
    return f'<html><body><ul class="news">{items}</ul>{pager}</body></html>'.encode()


def test_paging_options_work_with_inferred_selectors(
    server: SourceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.add("/news", Page(numbered(1, 3, "/news?p=2")))
    server.add("/news?p=2", Page(numbered(4, 3, "/news?p=3")))
    server.add("/news?p=3", Page(numbered(7, 3, None)))
    url = server.url("/news")
    # No next link is inferred on these pages ("Older news" in a plain paragraph): one page.
    code, out, err = cli(capsys, "try", url, "--kind", "html", "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 3
    code, out, err = cli(
        capsys, "try", url, "--kind", "html", "--json", "--next", "p.more a", "--max-pages", "2"
    )
    assert code == 0, err
    assert [i["title"] for i in json.loads(out)] == [
        f"News number {n} of the listing" for n in range(1, 7)
    ]
    assert '--next "p.more a" --max-pages 2' in err
    code, out, err = cli(capsys, "try", url, "--kind", "html", "--json", "--next", "p.more a")
    assert code == 0, err
    assert len(json.loads(out)) == 9
    # Parts of an item without --item are still a mistake, said in words.
    code, _out, err = cli(capsys, "try", url, "--title", "a")
    assert code == 2 and err.startswith("error: --item is needed with --title")


def test_add_keeps_paging_options_with_inferred_selectors(
    db_url: str, session: Session, server: SourceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sources add` with only --next and --max-pages: the item selectors are inferred, the
    paging is stored as given, and a later collect reads those pages."""
    server.add("/news", Page(numbered(1, 3, "/news?p=2")))
    server.add("/news?p=2", Page(numbered(4, 3, "/news?p=3")))
    server.add("/news?p=3", Page(numbered(7, 3, None)))
    url = server.url("/news")
    code, out, err = cli(
        capsys, "add", url, "--kind", "html", "--next", "p.more a", "--max-pages", "2"
    )
    assert code == 0, err
    assert "6 items" in out, out
    source = session.scalar(select(Source))
    assert source is not None
    selectors = source.selectors or {}
    assert selectors.get("next") == "p.more a" and selectors.get("max_pages") == 2, selectors
    assert selectors.get("item"), selectors  # inferred, stored with the paging
    code, _out, err = cli(capsys, "add", url, "--kind", "html", "--max-pages", "0")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
