"""What a collect run shares: the per-host slots in Redis (across limiters, as across
processes; counted locally when Redis is away) and one read of the recent titles per run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from digest.config import get_settings
from digest.models import Source
from digest.sources.collect import collect_sources
from digest.sources.hosts import HostLimiter, SharedHosts
from digest.sources.store import TitleIndex
from tests.fixtures.sources.server import Page, serving
from tests.smtp_server import free_port

NOW = datetime(2024, 3, 1, 9, 0)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    c.flushdb()
    yield c
    c.flushdb()


async def peak_of(limiters: list[HostLimiter], requests: int) -> int:
    """Run `requests` holders of a slot for one host, spread over the limiters; the most
    holding one at once."""
    holding = peak = 0

    async def hold(limiter: HostLimiter) -> None:
        nonlocal holding, peak
        async with limiter.slot("https://News.Example.org/feed"):
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0.02)
            holding -= 1

    await asyncio.gather(*(hold(limiters[n % len(limiters)]) for n in range(requests)))
    return peak


def test_limiters_sharing_redis_keep_to_the_host_limit_together(client: redis.Redis) -> None:
    # Two limiters, as two processes: each alone would allow two requests.
    shared = [HostLimiter(2, 32, SharedHosts(client, limit=2, ttl=30)) for _ in range(2)]
    assert asyncio.run(peak_of(shared, 12)) == 2
    assert client.zcard("digest:host:news.example.org") == 0  # every slot given back
    alone = [HostLimiter(2, 32) for _ in range(2)]
    assert asyncio.run(peak_of(alone, 12)) == 4


def test_with_redis_away_each_process_counts_alone() -> None:
    away = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    limiter = HostLimiter(2, 32, SharedHosts(away, limit=2, ttl=30))
    assert asyncio.run(peak_of([limiter], 6)) == 2


def test_a_run_reads_the_recent_titles_once(session: Session, db_url: str) -> None:
    # db_url: the run's sessions, in threads of their own, see what the test committed.
    factory = sessionmaker(session.get_bind(), expire_on_commit=False)
    with serving() as server:
        for n in range(6):
            feed = (
                "<?xml version='1.0'?><rss version='2.0'><channel><title>T</title>"
                "<link>https://ex.org/</link><description>d</description>"
                f"<item><title>Source {n} tells a story of some length</title>"
                f"<link>https://ex.org/{n}</link></item></channel></rss>"
            )
            page = Page(feed.encode(), "application/rss+xml", etag=f'"{n}"')
            session.add(Source(name=f"Feed {n}", url=server.add(f"/{n}.xml", page), kind="feed"))
        session.commit()
        first = TitleIndex(NOW)
        results = collect_sources(factory, None, NOW, titles=first, settings=get_settings())
        assert sum(r.new for r in results) == 6 and first.loads == 1
        rerun = TitleIndex(NOW)
        ids = [r.source_id for r in results]
        again = collect_sources(factory, ids, NOW, titles=rerun, settings=get_settings())
        assert all(r.not_modified for r in again) and rerun.loads == 0  # nothing new to check
