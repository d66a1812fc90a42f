"""Collect throughput: N sources of M items served on 127.0.0.1, first run vs an all-304 rerun.

    python benchmarks/collect.py [--sources 200] [--items 50] [--database-url URL]
                                 [--concurrency 16] [--per-host 16]

Half the sources are RSS feeds, half HTML listing pages read with selectors; every one answers
with an ETag, so the rerun costs one conditional GET per source and no parse. The server runs
in its own process (all sources share its one host, hence --per-host). The store is a fresh
SQLite file unless --database-url names a PostgreSQL database (its tables are created).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from digest import models  # noqa: E402
from digest.config import Settings  # noqa: E402
from digest.db import Base, get_engine, session_factory  # noqa: E402
from digest.models import Source, utcnow  # noqa: E402
from digest.sources.collect import collect_due  # noqa: E402
from tests.fixtures.sources.server import Page, SourceServer  # noqa: E402

SELECTORS = {"item": "article.news", "title": "h2 a", "date": "time", "summary": "p.teaser"}


def feed(source: int, items: int) -> bytes:
    entries = "".join(
        f"<item><title>Source {source} reports news number {n} of the month</title>"
        f"<link>https://s{source}.example.org/news/{n}</link><guid>s{source}-{n}</guid>"
        f"<pubDate>Wed, {n % 28 + 1:02d} Feb 2024 10:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;Summary of item {n}, with &lt;b&gt;markup&lt;/b&gt; and a "
        f"&lt;a href='/more/{n}'&gt;link&lt;/a&gt;.&lt;/p&gt;</description></item>"
        for n in range(items)
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>Source {source}</title><link>https://s{source}.example.org/</link>"
        f"<description>d</description>{entries}</channel></rss>"
    ).encode()


def listing(source: int, items: int) -> bytes:
    entries = "".join(
        f'<article class="news"><span class="label">News</span><h2><a href="/s{source}/news/{n}">'
        f"Listing {source} tells story number {n} of the month</a></h2>"
        f'<time datetime="2024-02-{n % 28 + 1:02d}">{n % 28 + 1} February 2024</time>'
        f'<p class="teaser">A teaser for story {n} of listing {source}.</p></article>'
        for n in range(items)
    )
    return f"<html><body><main>{entries}</main></body></html>".encode()


def serve(
    sources: int, items: int, ready: multiprocessing.Queue, stop: multiprocessing.Event
) -> None:  # type: ignore[type-arg]
    server = SourceServer()
    for n in range(sources):
        if n % 2:
            server.add(f"/s{n}", Page(listing(n, items), etag=f'"l{n}"'))
        else:
            server.add(f"/s{n}", Page(feed(n, items), "application/rss+xml", etag=f'"f{n}"'))
    server.start()
    ready.put(server.base)
    stop.wait()
    ready.put({"hits": sum(server.hits.values()), "not_modified": server.not_modified})
    server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-host", type=int, default=16)
    args = parser.parse_args()

    ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=serve, args=(args.sources, args.items, ready, stop))
    process.start()
    base = ready.get(timeout=60)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/bench.db"
        assert models.Item  # the tables are registered
        Base.metadata.create_all(get_engine(url))
        factory = session_factory(url)
        with factory.begin() as session:
            session.add_all(
                Source(
                    name=f"source {n}",
                    url=f"{base}/s{n}",
                    kind="html" if n % 2 else "feed",
                    selectors=SELECTORS if n % 2 else {},
                )
                for n in range(args.sources)
            )
        now = utcnow()
        # The sources are on 127.0.0.1, an address the collector refuses by default.
        settings = Settings(allow_private_fetch=True)
        options = {"concurrency": args.concurrency, "per_host": args.per_host, "settings": settings}
        started = time.perf_counter()
        first = collect_due(factory, now, **options)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rerun = collect_due(factory, now + timedelta(hours=2), **options)
        rerun_seconds = time.perf_counter() - started
        with factory() as session:
            stored = session.scalar(select(func.count()).select_from(models.Item)) or 0
        stop.set()
        served = ready.get(timeout=60)
        process.join(timeout=30)
        new = sum(r.new for r in first)
        result = {
            "sources": args.sources,
            "items_per_source": args.items,
            "database": url.split(":", 1)[0],
            "first_seconds": round(first_seconds, 3),
            "first_items_per_s": round(new / first_seconds, 1),
            "first_new_items": new,
            "first_errors": sum(1 for r in first if r.error),
            "rerun_seconds": round(rerun_seconds, 3),
            "rerun_items_per_s": round(args.sources * args.items / rerun_seconds, 1),
            "rerun_not_modified": sum(1 for r in rerun if r.not_modified),
            "rerun_new_items": sum(r.new + r.updated for r in rerun),
            "rerun_ratio": round(rerun_seconds / first_seconds, 4),
            "stored_items": stored,
            "http_requests": served["hits"],
            "http_304": served["not_modified"],
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
