"""Normalisation: titles, URLs, sanitised summaries, dates, encodings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.sources.dates import parse_date
from digest.sources.encoding import declared_encoding, decode
from digest.sources.summaries import SUMMARY_HTML_MAX, SUMMARY_TEXT_MAX, sanitise_summary
from digest.sources.text import TITLE_MAX, clean_title
from digest.urls import absolute_url, canonical_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Hello\n  world  ", "Hello world"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("<b>Bold</b> move", "Bold move"),
        ("Double &amp;amp; encoded &amp;lt;b&amp;gt;", "Double & encoded"),
        ("Bell\x07 and\x00 null\r\nand CRLF", "Bell and null and CRLF"),
        ("Bidi \u202eevil\u202c override", "Bidi evil override"),
        ("Line\u2028separator", "Line separator"),
        ("“Curly” quotes – en dash, Zoë", "“Curly” quotes – en dash, Zoë"),
        # Stored as given: slots are spelled with a secret per-render marker, not this.
        ("Sneaky [[digest:unsubscribe_url]]", "Sneaky [[digest:unsubscribe_url]]"),
        ("", ""),
    ],
)
def test_clean_title_is_one_plain_line(raw: str, expected: str) -> None:
    assert clean_title(raw) == expected


def test_clean_title_keeps_angle_brackets_of_plain_text_and_caps_length() -> None:
    assert clean_title("Use <b> for bold", is_html=False) == "Use <b> for bold"
    long = clean_title("word " * 200)
    assert len(long) <= TITLE_MAX and long.endswith("…") and "\n" not in long


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("/a/b", "https://ex.org/news/", "https://ex.org/a/b"),
        ("c", "https://ex.org/news/", "https://ex.org/news/c"),
        ("../up", "https://ex.org/news/list/", "https://ex.org/news/up"),
        ("?page=2", "https://ex.org/news?cat=1", "https://ex.org/news?page=2"),
        ("  https://ex.org/x\n", None, "https://ex.org/x"),
        ("javascript:alert(1)", "https://ex.org/", None),
        ("JaVaScRiPt:alert(1)", "https://ex.org/", None),
        ("data:text/html,<script>", "https://ex.org/", None),
        ("mailto:a@b.c", "https://ex.org/", None),
        ("#top", "https://ex.org/", None),
        ("", "https://ex.org/", None),
    ],
)
def test_absolute_url(href: str, base: str | None, expected: str | None) -> None:
    assert absolute_url(href, base) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTP://Example.COM/News/Item/", "https://example.com/News/Item"),
        ("https://example.com:443/x?utm_source=rss&utm_medium=email", "https://example.com/x"),
        ("https://example.com/x?b=2&a=1#section", "https://example.com/x?a=1&b=2"),
        ("https://example.com/x?fbclid=abc&id=7", "https://example.com/x?id=7"),
        ("https://example.com", "https://example.com/"),
    ],
)
def test_canonical_url_makes_spellings_equal(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


def test_canonical_url_keeps_meaningful_differences() -> None:
    assert canonical_url("https://ex.org/x?id=1") != canonical_url("https://ex.org/x?id=2")
    assert canonical_url("https://ex.org/a") != canonical_url("https://other.org/a")
    assert canonical_url("https://ex.org:8080/a") == "https://ex.org:8080/a"


def test_sanitise_summary_removes_everything_hostile() -> None:
    raw = (
        '<p onclick="steal()" style="color:red">Hi <a href="/rel">relative</a> '
        '<a href="javascript:alert(1)">js</a> <a href="data:text/html,x">data</a>'
        '<img src="data:image/png;base64,AAAA"><img src="/pixel.gif" width="1" height="1">'
        '<img src="https://feeds.feedburner.com/~r/x/~4/y"><img src="photo.jpg" alt="A">'
        "<script>alert(1)</script><iframe src='https://evil'></iframe><style>p{}</style></p>"
        "<form><input></form><svg onload=alert(1)></svg>"
    )
    html, text = sanitise_summary(raw, "https://ex.org/news/")
    lowered = html.lower()
    for bad in ("script", "onclick", "onload", "javascript:", "data:", "iframe", "style", "form"):
        assert bad not in lowered, bad
    assert "pixel.gif" not in html and "feedburner" not in html
    assert 'href="https://ex.org/rel"' in html
    assert 'src="https://ex.org/news/photo.jpg"' in html
    assert "alert" not in text and text.startswith("Hi relative js data")


def test_sanitise_summary_caps_oversized_content() -> None:
    html, text = sanitise_summary("<p>" + "lorem ipsum " * 50_000 + "</p>", None)
    assert len(html) <= SUMMARY_HTML_MAX + 20
    assert len(text) <= SUMMARY_TEXT_MAX and text.endswith("…")


def test_sanitise_summary_of_nothing() -> None:
    assert sanitise_summary("", None) == ("", "")
    assert sanitise_summary("<script>only()</script>", None) == ("", "")


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("21 February 2024", "en", datetime(2024, 2, 21, tzinfo=UTC)),
        ("21 février 2024", "fr", datetime(2024, 2, 21, tzinfo=UTC)),
        ("21 février 2024", None, datetime(2024, 2, 21, tzinfo=UTC)),
        ("3 janvier 2024", "fr-FR", datetime(2024, 1, 3, tzinfo=UTC)),
        ("21/02/2024", "en", datetime(2024, 2, 21, tzinfo=UTC)),
        ("03/02/2024", "en", datetime(2024, 2, 3, tzinfo=UTC)),
        ("03/02/2024", "en-US", datetime(2024, 3, 2, tzinfo=UTC)),
        ("2024-02-21", None, datetime(2024, 2, 21, tzinfo=UTC)),
        ("2024-02-21T09:30:00+01:00", None, datetime(2024, 2, 21, 8, 30, tzinfo=UTC)),
        ("Feb 21, 2024", "en", datetime(2024, 2, 21, tzinfo=UTC)),
        ("12 February 2024 | Interview", "en", datetime(2024, 2, 12, tzinfo=UTC)),
        ("Upcoming", "en", None),
        ("© Jane Doe 2023", "en", None),
        ("5 March", "en", None),  # no year: missing, not guessed
        ("", "en", None),
    ],
)
def test_parse_date(text: str, language: str | None, expected: datetime | None) -> None:
    assert parse_date(text, language) == expected


@pytest.mark.parametrize(
    ("content", "content_type", "expected_text", "codec"),
    [
        ("Genève".encode("latin-1"), "text/html; charset=ISO-8859-1", "Genève", "cp1252"),
        ("Łódź".encode("iso-8859-2"), "text/html; charset=iso-8859-2", "Łódź", "iso8859-2"),
        ("新闻".encode("gbk"), "text/html; charset=gb2312", "新闻", "gb18030"),
        (b"\xef\xbb\xbf" + "Zoë".encode(), None, "Zoë", "utf-8"),
        ("Zoë".encode("utf-16"), None, "Zoë", "utf-16-le"),
        # XML without a BOM in UTF-16 or EBCDIC: told by how "<?xml" starts.
        (
            "<?xml version='1.0'?><a>Zoë</a>".encode("utf-16-le"),
            None,
            "<?xml version='1.0'?><a>Zoë</a>",
            "utf-16-le",
        ),
        (
            "<?xml version='1.0' encoding='cp500'?><a>é</a>".encode("cp500"),
            None,
            "<?xml version='1.0' encoding='cp500'?><a>é</a>",
            "cp500",
        ),
        # Declared latin-1, sent as UTF-8: the bytes win.
        ("São Paulo".encode(), "text/html; charset=iso-8859-1", "São Paulo", "utf-8"),
        # Declared UTF-8, sent as windows-1252: the declaration cannot hold.
        ("“café”".encode("cp1252"), "text/html; charset=utf-8", "“café”", "cp1252"),
    ],
)
def test_decode(content: bytes, content_type: str | None, expected_text: str, codec: str) -> None:
    assert decode(content, content_type) == (expected_text, codec)


def test_declared_encoding_from_the_document() -> None:
    assert declared_encoding(b'<?xml version="1.0" encoding="ISO-8859-2"?><rss/>') == "iso8859-2"
    assert declared_encoding(b'<html><head><meta charset="gb2312">') == "gb18030"
    assert declared_encoding(b"<html>", "text/html") is None
