"""Listing pages without selectors: each way the detector went wrong on real sites, on pages of
our own making (tests/fixtures/sources/listings, one per failure mode, each with the items a
reader sees), and the parts of the detector one at a time."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.sources.encoding import decode
from digest.sources.errors import SourceError
from digest.sources.infer import infer_candidates, infer_selectors
from digest.sources.listing import Selectors, item_blocks, parse_html, read_page
from digest.sources.parsed import ParsedItem

LISTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "listings"
PAGES = sorted(p.stem for p in LISTINGS.glob("*.html"))


def read_fixture(name: str) -> tuple[list[ParsedItem], Selectors, dict[str, Any]]:
    truth = json.loads((LISTINGS / f"{name}.json").read_text(encoding="utf-8"))
    document = parse_html((LISTINGS / f"{name}.html").read_bytes())
    selectors = infer_selectors(document, truth["page_url"])
    return read_page(document, truth["page_url"], selectors).items, selectors, truth


def day(item: ParsedItem) -> str | None:
    return item.published_at.date().isoformat() if item.published_at else None


@pytest.mark.parametrize("name", PAGES)
def test_every_failure_page_reads_as_a_reader_sees_it(name: str) -> None:
    items, _selectors, truth = read_fixture(name)
    assert [(i.title, i.url, day(i)) for i in items] == [
        (e["title"], e["url"], e.get("date")) for e in truth["items"]
    ]


def test_lists_in_headers_sidebar_wrappers_and_forms_are_found() -> None:
    # 1. Titles in <header class="entry-header">, under "content-with-sidebar": not skipped.
    items, selectors, _ = read_fixture("wp_entry_header")
    assert selectors.title is not None and selectors.title.endswith("h2.entry-title a")
    assert not any(i.title.startswith(("Leave a comment", "Announcements")) for i in items)
    # A CMS table inside form#adminForm: the rows, not the sort links of its header row.
    items, selectors, _ = read_fixture("joomla_table")
    assert len(items) == 32 and selectors.date == "td.list-date"
    assert "Title" not in [i.title for i in items]


def test_links_in_running_text_never_outvote_the_titles() -> None:
    items, selectors, _ = read_fixture("front_page_posts")
    assert len(items) == 6 and selectors.title is not None
    assert selectors.title.endswith("h2.entry-title a")
    assert not any(i.title.startswith("Posted on") for i in items)


def test_item_selector_goes_down_from_the_list_container() -> None:
    items, selectors, _ = read_fixture("news_index_filters")
    assert selectors.item == "div.listing > ul > li"
    titles = {i.title for i in items}
    assert not titles & {"All news", "Press releases", "Housing and planning"}


def test_a_card_link_is_titled_by_its_headline_only() -> None:
    items, _selectors, _ = read_fixture("card_links")
    for item in items:
        assert not any(w in item.title for w in ("Sam Carter", "minute read", "words", "Written"))
        assert item.published_at is not None


def test_the_title_link_wins_over_a_category_link_before_it() -> None:
    items, _selectors, _ = read_fixture("category_first")
    assert len({i.guid for i in items}) == 40
    assert not any("/news/type/" in (i.url or "") for i in items)


def test_dates_by_position_and_in_flat_lists() -> None:
    _items, selectors, _ = read_fixture("disclosure_table")
    assert selectors.date == "td:nth-child(3)"
    _items, selectors, _ = read_fixture("flat_press")
    assert selectors.siblings and selectors.item == "#press > span.date"
    assert selectors.to_dict()["siblings"] is True


def test_short_titles_and_rows_without_links_are_kept() -> None:
    items, _selectors, _ = read_fixture("releases")
    assert [i.title for i in items][:2] == ["v3.4.1", "v3.4.0"]
    items, _selectors, truth = read_fixture("rows_without_link")
    unlinked = [i for i in items if i.url is None]
    assert len(unlinked) == sum(1 for e in truth["items"] if e["url"] is None) > 0
    assert all(i.title and "no published document" not in i.title for i in unlinked)


def test_candidates_are_distinct_and_the_best_comes_first() -> None:
    document = parse_html((LISTINGS / "news_index_filters.html").read_bytes())
    url = "https://news.example.org/news/"
    candidates = infer_candidates(document, url)
    assert 2 <= len(candidates) <= 3
    assert len({c.item for c in candidates}) == len(candidates)
    assert candidates[0] == infer_selectors(document, url)
    assert any(c.item == "ul.filters > li" for c in candidates[1:])


def page(body: str) -> Any:
    nav = "".join(f'<li><a href="/s{n}">Section {n} of the site</a></li>' for n in range(6))
    html = f"<html><body><header><nav><ul>{nav}</ul></nav></header>{body}</body></html>"
    return parse_html(html.encode())


TITLES = [f"Council number {n} publishes its annual report on water" for n in range(12)]
SITE = "https://p.example.org/news/"


def inferred_items(body: str) -> tuple[list[ParsedItem], Selectors]:
    document = page(body)
    selectors = infer_selectors(document, SITE)
    return read_page(document, SITE, selectors).items, selectors


def test_a_category_cell_before_the_title_cell() -> None:
    kinds = ["Press", "Statement", "Advisory"]
    rows = "".join(
        f'<tr><td><a href="/type/{kinds[n % 3]}">{kinds[n % 3]}</a></td>'
        f'<td><a href="/n/{n}">{t}</a></td><td>{n + 1} May 2024</td></tr>'
        for n, t in enumerate(TITLES)
    )
    items, selectors = inferred_items(f"<table>{rows}</table>")
    assert [i.title for i in items] == TITLES
    assert selectors.title == "td:nth-child(2) > a" and selectors.date == "td:nth-child(3)"


def test_headings_without_links_take_the_items_own_link() -> None:
    posts = "".join(
        f'<div class="post"><h3 class="post-title">{t}</h3><div class="post-body"><p>Text with'
        f' <a href="https://x.net/{n}">a link</a> and <a href="https://y.net/{n}">another one'
        f'</a> in the running text of the post.</p></div><div class="post-footer">Posted at'
        f' <a class="timestamp" href="/2024/03/p{n}.html">6:0{n} AM</a>'
        f' <a href="/2024/03/p{n}.html#comments">No comments</a></div></div>'
        for n, t in enumerate(TITLES[:6])
    )
    items, selectors = inferred_items(f'<div class="posts">{posts}</div>')
    assert [i.title for i in items] == TITLES[:6]
    assert [i.url for i in items] == [f"https://p.example.org/2024/03/p{n}.html" for n in range(6)]
    assert selectors.link is not None and "timestamp" in selectors.link


def test_cards_with_a_stretched_link_and_a_label() -> None:
    cards = "".join(
        f'<div class="card"><a class="stretched-link" href="/n/{n}"></a>'
        f'<a class="label" href="/topic/{n % 2}">Topic {n % 2}</a><h3>{t}</h3>'
        f"<p>March {n + 1}, 2024</p></div>"
        for n, t in enumerate(TITLES)
    )
    items, _selectors = inferred_items(f'<div class="grid">{cards}</div>')
    assert [(i.title, i.url) for i in items] == [
        (t, f"https://p.example.org/n/{n}") for n, t in enumerate(TITLES)
    ]


def test_a_list_and_a_sidebar_alike_inside_are_told_apart_by_their_ids() -> None:
    news = "".join(f'<li><a href="/n/{n}">{t}</a></li>' for n, t in enumerate(TITLES))
    tags = "".join(f'<li><a href="/tag/{n}">Tag number {n} here</a></li>' for n in range(20))
    items, selectors = inferred_items(
        f'<div id="wrapper"><div id="main-content"><ul>{news}</ul></div>'
        f'<div id="sidebar"><ul>{tags}</ul></div></div>'
    )
    assert selectors.item == "#main-content > ul > li"
    assert [i.title for i in items] == TITLES


def test_a_date_inside_the_title_link_is_the_date_not_the_title() -> None:
    rows = "".join(
        f'<li><a href="/n/{n}"><span class="date">2024-01-{n + 1:02d}</span> {t}</a></li>'
        for n, t in enumerate(TITLES)
    )
    items, _selectors = inferred_items(f'<ul class="list">{rows}</ul>')
    assert [(i.title, day(i)) for i in items] == [
        (t, f"2024-01-{n + 1:02d}") for n, t in enumerate(TITLES)
    ]


def test_month_first_numeric_dates_are_read_as_the_page_writes_them() -> None:
    # 05.19.15 can only be May 19th: so 05.06.15 on the same page is May 6th.
    dates = ["05.19.15", "05.06.15", "04.30.15", "04.02.15"]
    rows = "".join(
        f'<span class="date">{d}</span><h2 class="title"><a href="/p/{n}">{TITLES[n]}</a></h2>'
        f"<p>{'A summary of the release, long enough to be one. ' * 2}</p>"
        for n, d in enumerate(dates)
    )
    items, selectors = inferred_items(f'<div id="press">{rows}</div>')
    assert selectors.date_order == "MDY"
    assert [i.published_at for i in items] == [
        datetime(2015, 5, 19, tzinfo=UTC),
        datetime(2015, 5, 6, tzinfo=UTC),
        datetime(2015, 4, 30, tzinfo=UTC),
        datetime(2015, 4, 2, tzinfo=UTC),
    ]


def test_hidden_text_is_never_part_of_a_title() -> None:
    rows = "".join(
        f'<li><h3><a href="/n/{n}">{t}<span hidden>secret</span>'
        f'<span style="display: none">gone</span><span class="sr-only">skip</span></a></h3></li>'
        for n, t in enumerate(TITLES[:4])
    )
    items, _selectors = inferred_items(f'<ul class="news">{rows}</ul>')
    assert [i.title for i in items] == TITLES[:4]


def test_selectors_round_trip_with_siblings_and_date_order() -> None:
    selectors = Selectors(item="#press > span.date", title="h2 a", siblings=True, date_order="MDY")
    assert Selectors.from_dict(selectors.to_dict()) == selectors
    assert "siblings" not in Selectors(item="li").to_dict()
    with pytest.raises(SourceError, match="date_order"):
        Selectors.from_dict({"item": "li", "date_order": "YDM"})
    paging = Selectors(item="", next="a.next", max_pages=3)
    merged = Selectors(item="li", title="a").with_paging(paging)
    assert (merged.item, merged.next, merged.max_pages) == ("li", "a.next", 3)


def test_sibling_items_do_not_change_the_page() -> None:
    document = page('<div id="p"><b>1 May 2024</b><h2><a href="/a">First</a></h2><p>x</p>'
                    '<b>2 May 2024</b><h2><a href="/b">Second</a></h2></div>')  # fmt: skip
    before = len(list(document.iter()))
    blocks = item_blocks(document, Selectors(item="#p > b", siblings=True))
    assert [len(b) for b in blocks] == [3, 2]
    assert len(list(document.iter())) == before


HTML_BITS = st.sampled_from(
    ["<div>", "</div>", "<ul>", "</ul>", "<li>", "<a href='/x'>", "<a href='#'>", "</a>",
     "<h2>", "</h2>", "<table><tr><td>", "</td></tr></table>", "<span hidden>", "</span>",
     "<time datetime='2024-01-02'>", "</time>", "3 May 2024", "A headline of some length",
     "<script>x</script>", "<nav>", "</nav>", "<p style='display:none'>", "</p>", "&amp;"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(HTML_BITS, max_size=80))
def test_inference_answers_or_says_why_on_any_markup(bits: list[str]) -> None:
    document = parse_html(("<html><body>" + "".join(bits) + "x</body></html>").encode())
    try:
        candidates = infer_candidates(document, SITE)
    except SourceError:
        return
    for selectors in candidates:
        selectors.check()
        read_page(document, SITE, selectors)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_decoding_any_bytes_gives_text(content: bytes) -> None:
    text, codec = decode(content)
    assert isinstance(text, str) and codec


def test_dates_of_fixtures_are_real_days() -> None:
    # The fixtures' expected dates are well-formed (a broken fixture would test nothing).
    for name in PAGES:
        truth = json.loads((LISTINGS / f"{name}.json").read_text(encoding="utf-8"))
        for item in truth["items"]:
            date.fromisoformat(item["date"])


def test_version_numbers_in_card_links_are_titles() -> None:
    cards = "".join(
        f'<div class="release"><a class="card" href="/p/x/1.{n}.0/"><p class="version">1.{n}.0</p>'
        f'<p class="version-date"><time datetime="2024-03-{n + 1:02d}">Mar {n + 1}, 2024</time>'
        f"</p></a></div>"
        for n in range(8)
    )
    side = "".join(f'<li><a href="/x/{n}">Project link number {n}</a></li>' for n in range(8))
    items, _selectors = inferred_items(
        f'<div class="releases">{cards}</div><aside class="sidebar"><ul>{side}</ul></aside>'
    )
    assert [(i.title, day(i)) for i in items] == [
        (f"1.{n}.0", f"2024-03-{n + 1:02d}") for n in range(8)
    ]


def test_sections_of_one_list_with_their_own_ids_stay_one_list() -> None:
    months = "".join(
        f'<div id="{m}"><h2>{m}</h2><ul>'
        + "".join(
            f'<li><a href="/{m}/{n}">{t}</a> <span>{n + 1} {m} 2024</span></li>'
            for n, t in enumerate(TITLES[:4])
        )
        + "</ul></div>"
        for m in ("january", "february", "march")
    )
    items, _selectors = inferred_items(f'<div class="archive">{months}</div>')
    assert len(items) == 12


def test_a_label_before_the_headline_in_a_card_link_is_not_the_title() -> None:
    cards = "".join(
        f'<li><a href="/n/{n}"><span>News</span><span>{t}</span><span>{n + 1} May 2024</span>'
        f"</a></li>"
        for n, t in enumerate(TITLES[:6])
    )
    items, _selectors = inferred_items(f'<ul class="cards">{cards}</ul>')
    assert [(i.title, day(i)) for i in items] == [
        (t, f"2024-05-{n + 1:02d}") for n, t in enumerate(TITLES[:6])
    ]
