"""Listing pages as they really are, read with selectors and with inferred ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.sample import SAMPLE_LISTING, SAMPLE_SELECTORS
from digest.sources.discover import discover_feeds
from digest.sources.errors import SourceError
from digest.sources.feeds import parse_feed
from digest.sources.guids import title_digest
from digest.sources.infer import infer_selectors
from digest.sources.listing import Selectors, page_url, parse_html, parse_listing
from digest.sources.parsed import ParsedItem

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "pages"
SITE = "https://coop.example.org/news/list?category=coops&type=press"
QUIRKS = {
    "item": "article.teaser",
    "title": "h3.teaser-title a",
    "date": ".meta",
    "summary": ".teaser-body",
    "next": ".pager-next a",
}
SEED_TITLES = [
    "Jeun'ess in numbers retrospective 2023",
    "Four Modules on the SSE are now available in Portuguese and Russian",
]


def listing(name: str, selectors: dict | Selectors, url: str = SITE, language: str = "en"):
    chosen = Selectors.from_dict(selectors) if isinstance(selectors, dict) else selectors
    return parse_listing((PAGES / name).read_bytes(), url, chosen, language)


def inferred(name: str, url: str = SITE, language: str | None = "en") -> Selectors:
    return infer_selectors(parse_html((PAGES / name).read_bytes()), url, language)


def check_quirks(items: list[ParsedItem]) -> None:
    titles = [i.title for i in items]
    assert titles == [
        "“We build together” – an interview with Zoë Łukasiewicz",
        "A news item that has no summary at all",
        "Annual assembly of the cooperative network",
        "Regional meeting on the social and solidarity economy",
        "COOPERATIVE IS BEAUTIFUL: cooperatives in Senegal",
    ]
    # The caption and the category label are never the title (nor in it).
    for title in titles:
        assert "©" not in title and not title.startswith(("Interview", "News", "Event"))
    first, no_summary, event, other_site, senegal = items
    # Relative links of every kind, against the page URL with its filter query string.
    assert first.url == (
        "https://coop.example.org/news/we-build-together?utm_source=site&utm_medium=listing#top"
    )
    assert first.guid == "https://coop.example.org/news/we-build-together"  # canonical
    assert no_summary.url == "https://coop.example.org/news/no-summary"
    assert event.url == "https://coop.example.org/news/events/annual-assembly"
    assert other_site.url == "https://other.example.org/story"
    # Dates: a <time datetime>, 21/02-style, ISO and words; the event has none and stays so.
    assert first.published_at == datetime(2024, 2, 21, 8, 30, tzinfo=UTC)
    assert no_summary.published_at == datetime(2024, 2, 12, tzinfo=UTC)
    assert event.published_at is None
    assert other_site.published_at == datetime(2024, 1, 31, tzinfo=UTC)
    assert senegal.published_at == datetime(2024, 1, 11, tzinfo=UTC)
    assert no_summary.summary_text == "" and no_summary.summary_html == ""
    assert first.summary_text.startswith("Curly ‘quotes’, en dashes – and non-ASCII letters")
    assert first.image_url == "https://coop.example.org/img/assembly.jpg"


def test_quirks_with_selectors() -> None:
    page = listing("quirks.html", QUIRKS)
    check_quirks(page.items)
    # The next link keeps the filter query string it carries.
    assert page.next_url == "https://coop.example.org/news/list?category=coops&page=2"


def test_quirks_with_inferred_selectors() -> None:
    selectors = inferred("quirks.html")
    assert selectors.item == "article.teaser"
    assert selectors.title == "h3.teaser-title a"
    assert selectors.date == "div.meta"
    assert selectors.summary == "div.teaser-body"
    assert selectors.next == "li.pager-next a"
    check_quirks(listing("quirks.html", selectors).items)


def test_french_dates_and_category_links_never_titles() -> None:
    selectors = inferred("quirks_fr.html", language="fr")
    assert selectors.to_dict() == {
        "item": "div.row-item",
        "title": "h2.titre a",
        "date": "p.date",
        "summary": "p.chapo",
    }
    items = listing("quirks_fr.html", selectors, "https://ess.example.fr/", "fr").items
    assert [(i.title, i.published_at) for i in items] == [
        ("Réunion du réseau à Genève : l’ESS en débat", datetime(2024, 2, 21, tzinfo=UTC)),
        (
            "Les coopératives au Sénégal, un outil de formalisation",
            datetime(2024, 1, 3, tzinfo=UTC),
        ),
        (
            "Statistiques des coopératives : les faits saillants",
            datetime(2023, 12, 19, tzinfo=UTC),
        ),
    ]
    assert items[2].summary_text == ""


def test_cards_whose_link_wraps_label_and_heading() -> None:
    selectors = inferred("cards.html", url="https://cards.example.org/")
    items = listing("cards.html", selectors, "https://cards.example.org/").items
    assert [i.title for i in items] == [
        "The first card has a label inside its link",
        "The second card tells another story",
        "A third card, with no date on it",
    ]
    assert [i.url for i in items] == [
        f"https://cards.example.org/n/{n}" for n in ("first", "second", "third")
    ]
    assert items[0].published_at == datetime(2024, 2, 21, tzinfo=UTC)
    assert items[2].published_at is None


def test_a_link_holding_two_headings_is_titled_by_the_higher_one() -> None:
    # Whatever the process's hash seed: the headings are tried in rank order, not set order.
    cards = "".join(
        f'<div class="card"><a href="/n/{n}"><h5 class="kicker">News</h5>'
        f'<h3 class="card-title">Card number {n} tells its story</h3></a></div>'
        for n in range(3)
    )
    page = f"<html><body><section>{cards}</section></body></html>".encode()
    selectors = infer_selectors(parse_html(page), "https://cards.example.org/")
    assert selectors.title == "h3.card-title"
    items = parse_listing(page, "https://cards.example.org/", selectors).items
    assert [i.title for i in items] == [f"Card number {n} tells its story" for n in range(3)]


def test_discovery_prefers_the_main_atom_feed() -> None:
    document = parse_html((PAGES / "cards.html").read_bytes())
    feeds = discover_feeds(document, "https://cards.example.org/news")
    assert [f.url for f in feeds] == [
        "https://cards.example.org/feed.atom",
        "https://cards.example.org/feed.rss",
        "https://cards.example.org/comments/feed.xml",
    ]


def test_sample_listing_reads_the_seed_news() -> None:
    page = parse_listing(
        SAMPLE_LISTING.read_bytes(),
        SAMPLE_LISTING.as_uri(),
        Selectors.from_dict(SAMPLE_SELECTORS),
        "en",
    )
    items = page.items
    assert len(items) == 10
    assert [i.title for i in items[:2]] == SEED_TITLES
    assert items[0].summary_text == ""  # the seed's first item has no summary
    assert items[0].published_at == datetime(2024, 2, 21, tzinfo=UTC)
    assert items[-1].published_at == datetime(2023, 12, 14, tzinfo=UTC)
    assert all(i.url and i.url.startswith("https://www.example.org/sse/news/") for i in items)
    assert items[8].title.startswith("ILO’s policy dialogue")
    # Selectors inferred from the sample are the shipped ones.
    document = parse_html(SAMPLE_LISTING.read_bytes())
    assert infer_selectors(document, SAMPLE_LISTING.as_uri(), "en").to_dict() == SAMPLE_SELECTORS


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        ("latin2.html", ["Spółdzielnie w Łodzi rosną", "Żółta książka o ekonomii"]),
        ("gb2312.html", ["社会团结经济新闻发布会", "合作社发展报告（镕）"]),
        ("bom.html", ["Coopératives : le “grand” rapport", "Économie – sociale et solidaire"]),
        (
            "wrong_declared.html",
            ["Coopératives : le “grand” rapport", "Économie – sociale et solidaire"],
        ),
        ("wrong_utf8.html", ["Café “déjà” vu – news", "Second café post here"]),
        # Legacy encodings the page does not declare: told by the bytes themselves.
        (
            "euc_jp.html",
            ["市立図書館の開館時間が変わります", "市民講座の参加者を募集しています",
             "春の交通安全運動が始まります"],
        ),
        (
            "shift_jis.html",
            ["協同組合の年次報告書を公開しました", "地域の防災訓練のお知らせ",
             "子ども向け科学教室を開催します"],
        ),
        (
            "koi8_r.html",
            ["Городская библиотека открывает новый читальный зал",
             "Жители обсудили план развития парка", "Кооперативы региона подвели итоги года"],
        ),
    ],
)  # fmt: skip
def test_encodings(name: str, titles: list[str]) -> None:
    selectors = {"item": "li.post", "title": "h3 a", "date": ".when"}
    items = listing(name, selectors, "https://enc.example.org/").items
    assert [i.title for i in items] == titles
    assert all(i.published_at is not None for i in items)
    assert [
        i.title
        for i in listing(
            name, inferred(name, "https://enc.example.org/"), "https://enc.example.org/"
        ).items
    ] == titles


def test_hostile_listing() -> None:
    hostile = (
        b"<html><body><ul>"
        + b"".join(
            b'<li class="n"><h3><a href="javascript:alert(1)" onclick="x()">Evil link title here'
            b"</a></h3><p class='s'><img src=x onerror=alert(1)><script>steal()</script>Body text"
            b"</p></li>"
            b'<li class="n"><h3><a href="/ok">Title with\x07 bell and \nnewline\r\n</a></h3>'
            b"<p class='s'>" + b"A" * 300_000 + b"</p></li>"
            for _ in range(2)
        )
        + b"</ul></body></html>"
    )
    selectors = Selectors.from_dict({"item": "li.n", "title": "h3", "summary": ".s"})
    items = parse_listing(hostile, "https://h.example.org/", selectors).items
    evil, ok = items[0], items[1]
    assert evil.url is None and evil.title == "Evil link title here"
    assert "onerror" not in evil.summary_html and "steal" not in evil.summary_text
    assert ok.title == "Title with bell and newline"
    assert len(ok.summary_html) < 20_000 and len(ok.summary_text) <= 1000


def test_bad_selectors_and_pages_fail_in_words() -> None:
    with pytest.raises(SourceError, match="invalid CSS selector"):
        Selectors.from_dict({"item": "li[", "title": "a"})
    with pytest.raises(SourceError, match="item selector is missing"):
        Selectors.from_dict({"title": "a"})
    with pytest.raises(SourceError, match="no repeated news items"):
        infer_selectors(parse_html(b"<html><body><p>Nothing here</p></body></html>"), SITE)
    with pytest.raises(SourceError, match="empty"):
        parse_html(b"   ")


def test_page_url_keeps_filters() -> None:
    assert page_url(SITE, "page", 3) == (
        "https://coop.example.org/news/list?category=coops&type=press&page=3"
    )
    assert page_url(SITE + "&page=2", "page", 3).count("page=") == 1


def test_an_item_without_id_or_link_has_one_guid_whether_a_feed_or_a_page_says_it() -> None:
    """Its guid digests its title and date, spelled one way (digest.sources.guids): the same
    news read from a listing page or from a feed is one item, and a page read again after
    migration 0006 finds the items it stored before."""
    page = (
        b'<html><body><div class="news"><h3>Cooperative week opens in Lyon</h3>'
        b'<span class="d">21 February 2024</span></div></body></html>'
    )
    feed = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>Cooperative week opens in Lyon</title>"
        b"<pubDate>Wed, 21 Feb 2024 00:00:00 +0000</pubDate></item></channel></rss>"
    )
    selectors = Selectors.from_dict({"item": "div.news", "title": "h3", "date": ".d"})
    (from_page,) = parse_listing(page, SITE, selectors, "en").items
    (from_feed,) = parse_feed(feed, "https://coop.example.org/feed.xml")
    assert (from_page.url, from_feed.url) == (None, None)
    assert from_page.published_at == from_feed.published_at == datetime(2024, 2, 21, tzinfo=UTC)
    assert (
        from_page.guid
        == from_feed.guid
        == title_digest("Cooperative week opens in Lyon", datetime(2024, 2, 21, tzinfo=UTC))
    )
