"""Collecting into the store (SQLite and PostgreSQL) from sources served on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.config import get_settings
from digest.db import session_factory
from digest.models import Item as StoredItem
from digest.models import ListSource, MailingList, Source
from digest.sample import SAMPLE_LISTING, SAMPLE_SELECTORS
from digest.sources.collect import CollectResult, collect_due, collect_sources
from tests.fixtures.sources.server import Page, SourceServer, serving

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
NOW = datetime(2024, 3, 1, 9, 0)


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        yield running


def rss(*items: tuple[str, str, str | None]) -> bytes:
    """An RSS 2.0 feed of (title, link, pubDate or None)."""
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link>"
        + (f"<pubDate>{d}</pubDate>" if d else "")
        + "</item>"
        for t, link, d in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>T</title>"
        f"<link>https://ex.org/</link><description>d</description>{body}</channel></rss>"
    ).encode()


FEED = rss(
    (
        "Cooperatives grow in the region this year",
        "https://ex.org/a?utm_source=rss",
        "Wed, 21 Feb 2024 10:00:00 GMT",
    ),
    ("An upcoming event without any date", "https://ex.org/b", None),
)


def add_source(session: Session, url: str, kind: str = "feed", **fields: object) -> int:
    source = Source(name=url[-30:], url=url, kind=kind, **fields)
    session.add(source)
    session.commit()
    return source.id


def collect_source(session: Session, source_id: int, now: datetime) -> CollectResult:
    """Collect one source as every path does: its own transactions, none open while fetching;
    the test's session then sees what was stored."""
    session.commit()
    factory = sessionmaker(session.get_bind(), expire_on_commit=False)
    (result,) = collect_sources(factory, [source_id], now, settings=get_settings())
    session.expire_all()
    return result


def items_of(session: Session, source_id: int) -> list[StoredItem]:
    query = select(StoredItem).where(StoredItem.source_id == source_id).order_by(StoredItem.id)
    return list(session.scalars(query))


def test_collect_upserts_and_a_rerun_changes_nothing(
    session: Session, server: SourceServer
) -> None:
    source_id = add_source(session, server.add("/feed.xml", Page(FEED, "application/rss+xml")))
    result = collect_source(session, source_id, NOW)
    session.commit()
    assert (result.new, result.updated, result.not_modified, result.error) == (2, 0, False, None)
    dated, undated = items_of(session, source_id)
    assert dated.published_at == datetime(2024, 2, 21, 10, 0)  # naive UTC in the store
    assert dated.canonical_url == "https://ex.org/a"
    assert undated.published_at is None and undated.first_seen_at == NOW

    later = NOW + timedelta(hours=2)
    again = collect_source(session, source_id, later)
    session.commit()
    assert (again.new, again.updated) == (0, 0)
    assert [i.first_seen_at for i in items_of(session, source_id)] == [NOW, NOW]

    server.add(
        "/feed.xml", Page(FEED.replace(b"this year", b"this year (updated)"), "application/rss+xml")
    )
    changed = collect_source(session, source_id, later + timedelta(hours=1))
    session.commit()
    assert (changed.new, changed.updated) == (0, 1)
    first = items_of(session, source_id)[0]
    assert first.title.endswith("(updated)") and first.first_seen_at == NOW
    source = session.get(Source, source_id)
    assert source is not None and source.last_success_at == later + timedelta(hours=1)
    assert source.consecutive_failures == 0 and source.last_error is None


def test_unchanged_source_costs_a_304_and_no_parse(session: Session, server: SourceServer) -> None:
    url = server.add("/etag.xml", Page(FEED, "application/rss+xml", etag='"abc"'))
    source_id = add_source(session, url)
    assert collect_source(session, source_id, NOW).new == 2
    session.commit()
    # Now the body is not even a feed: had it been parsed, this would be an error.
    server.add("/etag.xml", Page(b"<html>junk</html>", "text/html", etag='"abc"'))
    result = collect_source(session, source_id, NOW + timedelta(hours=1))
    session.commit()
    assert result.not_modified and result.error is None and result.new == 0
    assert server.not_modified == 1


def test_failures_are_recorded_in_words_with_backoff(
    session: Session, server: SourceServer
) -> None:
    source_id = add_source(session, server.url("/gone.xml"), fetch_interval_minutes=60)
    first = collect_source(session, source_id, NOW)
    session.commit()
    assert first.error is not None and "HTTP 404" in first.error
    source = session.get(Source, source_id)
    assert source is not None
    assert (source.consecutive_failures, source.last_error) == (1, first.error)
    assert source.next_fetch_at == NOW + timedelta(hours=1)
    collect_source(session, source_id, NOW + timedelta(hours=1))
    session.commit()
    assert source.consecutive_failures == 2
    assert source.next_fetch_at == NOW + timedelta(hours=1) + timedelta(hours=2)
    server.add("/gone.xml", Page(FEED, "application/rss+xml"))
    recovered = collect_source(session, source_id, NOW + timedelta(hours=4))
    session.commit()
    assert recovered.new == 2 and source.consecutive_failures == 0 and source.last_error is None


def test_one_broken_source_never_stops_the_others(
    session: Session, server: SourceServer, db_url: str
) -> None:
    good = add_source(session, server.add("/good.xml", Page(FEED, "application/rss+xml")))
    missing = add_source(session, server.url("/missing.xml"))
    moved = (FIXTURES / "feeds" / "not_a_feed.html").read_bytes()
    not_feed = add_source(session, server.add("/moved.rss", Page(moved, "text/html")))
    hostile = add_source(session, server.add("/hostile.xml", Page(b"\x00\xff" * 1000, "text/xml")))
    add_source(session, "https://ex.org/manual", kind="manual")
    later = add_source(session, server.url("/later.xml"), next_fetch_at=NOW + timedelta(days=1))
    progress: list[tuple[int, int]] = []
    collected = collect_due(
        session_factory(db_url),
        NOW,
        on_progress=lambda *p: progress.append(p),
        settings=get_settings(),
    )
    results = {r.source_id: r for r in collected}
    assert set(results) == {good, missing, not_feed, hostile}  # manual and not-due skipped
    assert progress == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # broken fetches count too
    assert results[good].new == 2 and results[good].error is None
    assert "HTTP 404" in (results[missing].error or "")
    assert "is an HTML page ('Document Moved'), not a feed" in (results[not_feed].error or "")
    assert results[hostile].error
    session.expire_all()
    assert len(items_of(session, good)) == 2
    for broken in (missing, not_feed, hostile):
        source = session.get(Source, broken)
        assert source is not None and source.consecutive_failures == 1 and source.last_error
    assert server.hits.get("/later.xml") is None and later not in results
    # Nothing is due again until the interval has passed.
    assert (
        collect_due(session_factory(db_url), NOW + timedelta(minutes=1), settings=get_settings())
        == []
    )


def test_same_news_from_two_sources_is_one_item(session: Session, server: SourceServer) -> None:
    first = add_source(session, server.add("/a.xml", Page(FEED, "application/rss+xml")))
    collect_source(session, first, NOW)
    session.commit()
    listing = (
        b"<html><body>"
        # Same page: other scheme, host case, trailing slash, tracking and fragment.
        b'<div class="n"><h3><a href="http://EX.org/a/?utm_campaign=x#top">Co-ops grow</a>'
        b"</h3></div>"
        # Same news, other URL: a near-identical title two days later.
        b'<div class="n"><h3><a href="https://mirror.example.net/x">Cooperatives grow in the '
        b"region this year!</a></h3><span class='d'>23 February 2024</span></div>"
        # A short, recurring title is not enough to call two items the same.
        b'<div class="n"><h3><a href="https://mirror.example.net/w">An upcoming event</a>'
        b"</h3></div>"
        b'<div class="n"><h3><a href="https://mirror.example.net/new">Something new entirely</a>'
        b"</h3></div></body></html>"
    )
    second = add_source(
        session,
        server.add("/mirror", Page(listing)),
        kind="html",
        selectors={"item": "div.n", "title": "h3 a", "date": ".d"},
    )
    result = collect_source(session, second, NOW + timedelta(hours=1))
    session.commit()
    assert (result.new, result.duplicates) == (2, 2)
    assert [i.title for i in items_of(session, second)] == [
        "An upcoming event",
        "Something new entirely",
    ]
    assert session.scalar(select(func.count()).select_from(StoredItem)) == 4


def test_listing_sources_from_disk_and_inferred(session: Session, server: SourceServer) -> None:
    sample = add_source(
        session, SAMPLE_LISTING.resolve().as_uri(), kind="html", selectors=dict(SAMPLE_SELECTORS)
    )
    assert collect_source(session, sample, NOW).new == 10
    quirks = (FIXTURES / "pages" / "quirks.html").read_bytes()
    inferred = add_source(
        session, server.add("/news?category=coops", Page(quirks)), kind="html", selectors={}
    )
    result = collect_source(session, inferred, NOW)
    session.commit()
    assert result.new == 5 and result.error is None
    undated = [i for i in items_of(session, inferred) if i.published_at is None]
    assert [i.title for i in undated] == ["Annual assembly of the cooperative network"]
    assert undated[0].first_seen_at == NOW  # dated by first-seen


def sources_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`digest sources ARGS` through the real entry point: (exit code, stdout, stderr)."""
    from digest.cli import main

    capsys.readouterr()
    code = main(["sources", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_try_add_and_list(
    db_url: str, server: SourceServer, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_url = server.add("/feed.xml", Page(FEED, "application/rss+xml"))
    code, out, err = sources_cli(capsys, "try", feed_url, "--json")
    assert code == 0, err
    assert json.loads(out) == [
        {
            "title": "Cooperatives grow in the region this year",
            "url": "https://ex.org/a?utm_source=rss",
            "published_at": "2024-02-21T10:00:00Z",
            "summary": "",
            "guid": "https://ex.org/a",
        },
        {
            "title": "An upcoming event without any date",
            "url": "https://ex.org/b",
            "published_at": None,
            "summary": "",
            "guid": "https://ex.org/b",
        },
    ]
    code, out, _err = sources_cli(capsys, "try", str(SAMPLE_LISTING), "--kind", "html")
    assert code == 0 and "selectors (inferred)" in out
    assert "li.news-item" in out

    session.add(MailingList(slug="sse", name="SSE news"))
    session.commit()
    server.add("/", Page((FIXTURES / "pages" / "cards.html").read_bytes()))
    server.add(
        "/feed.atom", Page((FIXTURES / "feeds" / "atom.xml").read_bytes(), "application/atom+xml")
    )
    code, _out, err = sources_cli(capsys, "add", server.url("/"), "--list", "sse")
    assert code == 0, err
    source = session.scalar(select(Source))
    assert source is not None and source.url == server.url("/feed.atom") and source.kind == "feed"
    assert session.scalar(select(ListSource.source_id)) == source.id
    code, _out, err = sources_cli(
        capsys, "add", str(SAMPLE_LISTING), "--name", "Sample", "--kind", "html"
    )
    assert code == 0, err
    stored = session.scalar(select(Source).where(Source.name == "Sample"))
    assert stored is not None and stored.selectors == SAMPLE_SELECTORS
    assert stored.url == SAMPLE_LISTING.resolve().as_uri()

    source.last_error, source.consecutive_failures = "HTTP 500 for the feed", 3
    session.commit()
    _code, out, _err = sources_cli(capsys, "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["Sample"]["kind"] == "html"
    assert [r["consecutive_failures"] for r in rows.values()] == [3, 0]
    assert sources_cli(capsys, "list")[0] == 0

    for args in (
        ["add", str(SAMPLE_LISTING), "--kind", "html"],  # already a source
        ["add", feed_url, "--list", "nope"],
        ["try", server.url("/missing")],
        ["try", "--kind", "feed", str(FIXTURES / "feeds" / "not_a_feed.html")],
        ["try", str(SAMPLE_LISTING), "--item", "li["],
    ):
        code, out, err = sources_cli(capsys, *args)
        assert code == 2, (args, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1
        assert "Traceback" not in out + err
