"""Fetching over real HTTP on 127.0.0.1: validators, gzip, caps, redirects, pagination, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.config import Settings, get_settings
from digest.sources.errors import FetchError, SourceError
from digest.sources.fetch import fetch, fetch_async, make_client
from digest.sources.hosts import HostLimiter
from digest.sources.reader import read_once
from tests.fixtures.sources.server import Page, SourceServer, serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
RSS = (FIXTURES / "feeds" / "rss20.xml").read_bytes()


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        yield running


def settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


def test_conditional_get_by_etag_and_last_modified(server: SourceServer) -> None:
    by_etag = server.add("/etag.xml", Page(RSS, "application/rss+xml", etag='"v1"'))
    first = fetch(by_etag, settings=get_settings())
    assert first.status == 200 and first.etag == '"v1"' and first.content == RSS
    again = fetch(by_etag, etag=first.etag, settings=get_settings())
    assert again.not_modified and again.content == b""
    stamp = "Wed, 21 Feb 2024 10:00:00 GMT"
    by_date = server.add("/lm.xml", Page(RSS, "application/rss+xml", last_modified=stamp))
    assert fetch(by_date, settings=get_settings()).last_modified == stamp
    assert fetch(by_date, last_modified=stamp, settings=get_settings()).not_modified
    assert server.not_modified == 2
    result = read_once(by_etag, settings=get_settings())  # no validators: a full read
    assert len(result.items) == 2 and result.etag == '"v1"'


def test_user_agent_and_gzip(server: SourceServer) -> None:
    url = server.add("/gz.xml", Page(RSS, "application/rss+xml", gzip=True))
    fetched = fetch(url, settings=settings(user_agent="digest-test/1 (+https://ex.org/bot)"))
    assert fetched.content == RSS
    request = server.requests[-1]
    assert request["User-Agent"] == "digest-test/1 (+https://ex.org/bot)"
    assert "gzip" in request["Accept-Encoding"]


def test_size_cap_counts_decoded_bytes(server: SourceServer) -> None:
    bomb = b"<rss>" + b" " * 2_000_000 + b"</rss>"
    url = server.add("/bomb.xml", Page(bomb, "application/rss+xml", gzip=True))
    with pytest.raises(FetchError, match="larger than"):
        fetch(url, settings=settings(fetch_max_bytes=100_000))
    big = server.add("/big.xml", Page(bomb, "application/rss+xml"))
    with pytest.raises(FetchError, match="larger than"):
        fetch(big, settings=settings(fetch_max_bytes=100_000))


def test_redirects_followed_up_to_the_limit(server: SourceServer) -> None:
    server.add("/feed.xml", Page(RSS, "application/rss+xml"))
    server.add("/moved", Page(status=301, location=server.url("/feed.xml")))
    assert fetch(server.url("/moved"), settings=get_settings()).url == server.url("/feed.xml")
    for n in range(4):
        server.add(f"/loop{n}", Page(status=302, location=server.url(f"/loop{n + 1}")))
    server.add("/loop4", Page(status=302, location=server.url("/loop0")))
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(server.url("/loop0"), settings=settings(fetch_max_redirects=3))


def test_timeouts_and_errors_in_words(server: SourceServer) -> None:
    slow = server.add("/slow", Page(RSS, delay=2.0))
    with pytest.raises(FetchError, match=r"timed out after 0\.5 s"):
        fetch(slow, settings=settings(fetch_timeout=0.5))
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(server.url("/missing"), settings=get_settings())
    server.add("/boom", Page(b"oops", status=500))
    with pytest.raises(FetchError, match="HTTP 500"):
        fetch(server.url("/boom"), settings=get_settings())
    with pytest.raises(FetchError, match="could not connect"):
        fetch("http://127.0.0.1:9/feed.xml", settings=get_settings())
    with pytest.raises(FetchError, match="unsupported address"):
        fetch(
            "ftp://127.0.0.1/feed.xml", local_ok=True, settings=get_settings()
        )  # as a source's own address
    with pytest.raises(FetchError, match=r"not an http\(s\) URL"):
        fetch("ftp://127.0.0.1/feed.xml", settings=get_settings())


def test_html_page_served_as_feed_is_a_clear_error(server: SourceServer) -> None:
    moved = (FIXTURES / "feeds" / "not_a_feed.html").read_bytes()
    url = server.add("/rss/pf/", Page(moved, "text/html"))
    with pytest.raises(SourceError, match="is an HTML page"):
        read_once(url, kind="feed", settings=get_settings())


def _numbered_page(start: int, count: int, next_href: str | None) -> bytes:
    items = "".join(
        f'<div class="news"><h3><a href="/n/{n}">News number {n} of the listing</a></h3>'
        f'<span class="d">{n % 28 + 1} February 2024</span></div>'
        for n in range(start, start + count)
    )
    pager = f'<a class="next" href="{next_href}">Next</a>' if next_href else ""
    return f"<html><body><main>{items}</main>{pager}</body></html>".encode()


def test_pagination_by_next_link_with_cap(server: SourceServer) -> None:
    server.add("/news?cat=a", _numbered_page(1, 3, "?cat=a&p=2"))
    server.add("/news?cat=a&p=2", _numbered_page(4, 3, "/news?cat=a&p=3"))
    server.add("/news?cat=a&p=3", _numbered_page(7, 3, None))
    given = {"item": "div.news", "title": "h3 a", "date": ".d", "next": "a.next"}
    result = read_once(
        server.url("/news?cat=a"), kind="html", selectors=given, settings=get_settings()
    )
    assert [i.url for i in result.items] == [server.url(f"/n/{n}") for n in range(1, 10)]
    assert result.pages == 3
    capped = read_once(
        server.url("/news?cat=a"),
        kind="html",
        selectors=given | {"max_pages": 2},
        settings=get_settings(),
    )
    assert len(capped.items) == 6
    inferred = read_once(server.url("/news?cat=a"), kind="html", settings=get_settings())
    assert inferred.selectors is not None and inferred.selectors.next == "a.next"
    assert len(inferred.items) == 9


def test_pagination_by_page_and_offset_parameters(server: SourceServer) -> None:
    server.add("/list?type=press", _numbered_page(10, 2, None))  # page 1 has no parameter
    for page in (2, 3):
        server.add(f"/list?type=press&page={page}", _numbered_page(page * 10, 2, None))
    # Past the last page the site repeats its last page: nothing new ends the walk.
    server.add("/list?type=press&page=4", _numbered_page(30, 2, None))
    by_page = {"item": "div.news", "title": "h3 a", "page_param": "page", "max_pages": 10}
    result = read_once(
        server.url("/list?type=press"), kind="html", selectors=by_page, settings=get_settings()
    )
    assert [i.title for i in result.items][::2] == [
        f"News number {n} of the listing" for n in (10, 20, 30)
    ]
    assert server.hits.get("/list?type=press&page=5") is None
    for offset in (0, 20, 40):
        server.add(f"/off?offset={offset}", _numbered_page(offset + 1, 2, None))
    by_offset = {"item": "div.news", "title": "h3 a", "page_param": "offset", "page_step": 20}
    result = read_once(
        server.url("/off?offset=0"),
        kind="html",
        selectors=by_offset | {"max_pages": 3},
        settings=get_settings(),
    )
    assert len(result.items) == 6


def test_auto_on_a_site_page_reads_the_feed_it_announces(server: SourceServer) -> None:
    page = (FIXTURES / "pages" / "cards.html").read_bytes()
    server.add("/", Page(page))
    server.add(
        "/feed.atom", Page((FIXTURES / "feeds" / "atom.xml").read_bytes(), "application/atom+xml")
    )
    result = read_once(server.url("/"), settings=get_settings())
    assert result.kind == "feed" and result.feed_url == server.url("/feed.atom")
    assert [i.title for i in result.items] == ["v2.0 released", "v1.0"]
    forced = read_once(server.url("/"), kind="html", settings=get_settings())
    assert forced.kind == "html" and len(forced.items) == 3


def test_per_host_concurrency_limit(server: SourceServer) -> None:
    for n in range(6):
        server.add(f"/slow{n}.xml", Page(RSS, "application/rss+xml", delay=0.3))

    async def fetch_all(per_host: int) -> None:
        limiter = HostLimiter(per_host=per_host, total=16)
        async with make_client(Settings()) as client:
            await asyncio.gather(
                *(
                    fetch_async(
                        client,
                        server.url(f"/slow{n}.xml"),
                        limiter=limiter,
                        settings=get_settings(),
                    )
                    for n in range(6)
                )
            )

    asyncio.run(fetch_all(per_host=2))
    assert server.peak == 2
    server.peak = 0
    asyncio.run(fetch_all(per_host=6))
    assert server.peak > 2
