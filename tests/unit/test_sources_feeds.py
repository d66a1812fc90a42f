"""Feeds: RSS 0.91/1.0/2.0, Atom, JSON Feed, encodings, not-a-feed and ill-formed input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.config import get_settings
from digest.sources.errors import SourceError
from digest.sources.feeds import looks_like, parse_feed
from digest.sources.reader import read_once

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "sources" / "feeds"
URL = "https://coop.example.org/feed.xml"


def read(name: str, url: str = URL) -> list:
    return parse_feed((FEEDS / name).read_bytes(), url)


def test_rss20() -> None:
    first, second = read("rss20.xml")
    assert first.title == "Cooperatives & the “informal” economy – a review"
    assert first.url == "https://coop.example.org/news/review?utm_source=rss&utm_medium=feed"
    assert first.guid == "coop-101"
    assert first.published_at == datetime(2024, 2, 21, 9, 30, tzinfo=UTC)
    assert first.image_url == "https://coop.example.org/img/review.jpg"
    assert 'href="https://coop.example.org/more"' in first.summary_html
    assert "feedburner" not in first.summary_html  # the tracking pixel is gone
    assert first.summary_text == "First paragraph with a relative link."
    # No guid: the canonical URL is the id; no date: None, never "now".
    assert second.url == "https://coop.example.org/news/second"
    assert second.guid == "https://coop.example.org/news/second"
    assert second.published_at is None
    assert second.summary_text == "Plain text summary."


def test_rss091_in_latin1() -> None:
    (item,) = read("rss091.xml")
    assert item.title == "Économie sociale : réunion à Genève"
    assert item.summary_text == "Une réunion."


def test_rss10_rdf() -> None:
    (item,) = read("rss10.rdf")
    assert item.title == "An RDF item"
    assert item.url == "https://rdf.example.org/a"
    assert item.published_at == datetime(2017, 6, 15, 17, 29, 47, tzinfo=UTC)


def test_atom_prefers_published_keeps_milliseconds_and_resolves_links() -> None:
    newer, older = read("atom.xml", "https://code.example.org/project/releases.atom")
    assert newer.title == "v2.0 released"  # type="html" title: tags dropped
    assert newer.url == "https://code.example.org/project/releases/tag/v2.0"
    assert newer.published_at == datetime(2024, 2, 1, 16, 22, 0, 1000, tzinfo=UTC)
    assert newer.guid == "tag:code.example.org,2024:v2"
    for bad in ("script", "onclick", "javascript"):
        assert bad not in newer.summary_html
    assert older.published_at == datetime(2023, 12, 1, 8, tzinfo=UTC)  # only <updated>


def test_atom_from_disk_resolves_against_the_site_it_names() -> None:
    newer, _ = parse_feed((FEEDS / "atom.xml").read_bytes(), (FEEDS / "atom.xml").as_uri())
    assert newer.url == "https://code.example.org/project/releases/tag/v2.0"


def test_json_feed() -> None:
    first, second = read("feed.json", "https://json.example.org/feed.json")
    assert (first.guid, first.title) == ("j1", "A JSON Feed item")
    assert first.published_at == datetime(2024, 2, 21, 8, tzinfo=UTC)
    assert "data:" not in first.summary_html and first.summary_text == "Hello world"
    assert first.image_url == "https://json.example.org/1.png"
    assert second.guid == "2" and second.title == ""
    assert second.url == "https://json.example.org/posts/2"
    assert second.summary_text == "No title here, only text. Second paragraph."
    assert second.published_at == datetime(2024, 2, 22, tzinfo=UTC)


def test_json_that_is_not_a_json_feed() -> None:
    with pytest.raises(SourceError, match="not a JSON Feed"):
        parse_feed(b'{"hello": "world"}', URL)
    with pytest.raises(SourceError, match="not valid JSON"):
        parse_feed(b"{broken", URL)


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("gb2312.xml", "社会团结经济新闻"),
        ("latin2.xml", "Spółdzielnie w Łodzi"),
        # Not declared at all (XML says UTF-8 then): the bytes tell.
        ("koi8_r.xml", "Городская библиотека открывает новый читальный зал"),
        ("shift_jis.xml", "協同組合の年次報告書を公開しました"),
    ],
)
def test_declared_encodings(name: str, title: str) -> None:
    assert read(name)[0].title == title


def test_html_page_is_a_clear_error_not_zero_items() -> None:
    with pytest.raises(SourceError, match=r"is an HTML page \('Document Moved'\), not a feed"):
        read("not_a_feed.html")
    # Through the reader too, whatever kind is asked for.
    for kind in ("auto", "feed", "html"):
        with pytest.raises(SourceError):
            read_once(str(FEEDS / "not_a_feed.html"), kind=kind, settings=get_settings())


def test_empty_and_garbage_are_errors() -> None:
    with pytest.raises(SourceError, match="empty"):
        parse_feed(b"", URL)
    with pytest.raises(SourceError, match="not an RSS, Atom or JSON feed"):
        parse_feed(b"\x00\x01\x02 binary junk \xff\xfe", URL)


def test_looks_like() -> None:
    assert looks_like(b"  \n<?xml version='1.0'?><rss version='2.0'>") == "feed"
    assert looks_like(b"\xef\xbb\xbf<feed xmlns='http://www.w3.org/2005/Atom'>") == "feed"
    assert looks_like(b'{"version": "https://jsonfeed.org/version/1"}') == "json"
    assert looks_like(b"<!DOCTYPE html><html>") == "html"


# Ill-formed feeds of the kinds feedparser's own test suite covers: each is read without a
# crash, either as items (feedparser's lenient parser) or as a SourceError in words.
ILLFORMED = {
    "unclosed_tags": b"<rss version='2.0'><channel><title>t<item><title>One<link>https://x.org/1",
    "undefined_entity": b"<rss version='2.0'><channel><item><title>A &nbsp; &eacute; &bogus; B"
    b"</title><link>https://x.org/1</link></item></channel></rss>",
    "bad_encoding_bytes": b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
    b"<item><title>caf\xe9 \xff\xfe</title><link>https://x.org/1</link></item></channel></rss>",
    "unknown_encoding": b"<?xml version='1.0' encoding='x-klingon'?><rss version='2.0'><channel>"
    b"<item><title>Qapla</title><link>https://x.org/1</link></item></channel></rss>",
    "utf16_declared_ascii_bytes": b"<?xml version='1.0' encoding='utf-16'?><rss version='2.0'>"
    b"<channel><item><title>x</title></item></channel></rss>",
    "truncated": b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><entry><title>Cut",
    "billion_laughs": b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    b"<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
    b"<rss version='2.0'><channel><item><title>&lol3;</title></item></channel></rss>",
    "external_entity": b"<?xml version='1.0'?><!DOCTYPE r [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
    b"<rss version='2.0'><channel><item><title>&x;</title></item></channel></rss>",
    "deep_nesting": b"<rss version='2.0'><channel><item><title>" + b"<b>" * 5000 + b"deep</title>"
    b"</item></channel></rss>",
    "bad_dates": b"<rss version='2.0'><channel><item><title>d</title><pubDate>Mon, 99 Foo 99999 "
    b"99:99:99 +9999</pubDate></item><item><title>e</title><pubDate>0000-00-00</pubDate>"
    b"</item></channel></rss>",
    "null_bytes": b"<rss version='2.0'><channel><item><title>a\x00b</title></item></channel></rss>",
    "atom_no_namespace": b"<feed><entry><title>No ns</title><link href='/x'/></entry></feed>",
    "rss_no_version": b"<rss><channel><item><title>No version</title></item></channel></rss>",
    "html_in_cdata": b"<rss version='2.0'><channel><item><title><![CDATA[<script>alert(1)</script>"
    b"Real title]]></title><description><![CDATA[<img src=x onerror=alert(1)>]]></description>"
    b"</item></channel></rss>",
}


@pytest.mark.parametrize("name", sorted(ILLFORMED))
def test_illformed_feeds_never_crash(name: str) -> None:
    try:
        items = parse_feed(ILLFORMED[name], "https://x.org/feed")
    except SourceError as exc:
        assert str(exc)
        return
    for item in items:
        assert "\n" not in item.title and "\x00" not in item.title
        assert "<script" not in item.summary_html and "onerror" not in item.summary_html
        assert "root:" not in item.title  # no external entity was read


def test_html_in_title_is_dropped_and_summary_sanitised() -> None:
    (item,) = parse_feed(ILLFORMED["html_in_cdata"], "https://x.org/feed")
    assert item.title == "Real title"
    # The handler is gone; the picture stays, resolved against the feed.
    assert item.summary_html == '<img src="https://x.org/x">' and item.summary_text == ""


def test_read_once_auto_detects_feeds_from_disk() -> None:
    result = read_once(str(FEEDS / "rss20.xml"), settings=get_settings())
    assert result.kind == "feed" and len(result.items) == 2
