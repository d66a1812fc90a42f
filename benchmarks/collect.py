"""Collect throughput: N sources of M items served on 127.0.0.1, first run vs an all-304 rerun,
on both paths: inline (`collect_due` in this process, as `digest collect` runs it) and on real
`digest worker` processes (beat's collect_due_sources tick: batches of source ids, per-host
limits shared through a private redis-server, a scratch PostgreSQL database).

    python benchmarks/collect.py [--sources 200] [--items 50] [--paths inline,workers]
                                 [--store sqlite|postgresql] [--workers 2] [--processes 2]
                                 [--batch-size 50] [--concurrency 16] [--per-host 16]

Half the sources are RSS feeds, half HTML listing pages read with selectors; every one answers
with an ETag, so the rerun costs one conditional GET per source and no parse. The server runs
in its own process (all sources share its one host, hence --per-host, which both paths keep
to: inline in its process, on the workers all together). `title_reads` counts how often the
recent titles were read (once per run inline, once per batch on the workers). Prints one JSON
line per path; `title_read_ms` is what one such read costs on the store the run filled.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402

from benchmarks.common import scratch_database  # noqa: E402
from benchmarks.send import REDIS, free_port, redis_args, running  # noqa: E402
from digest import models  # noqa: E402
from digest.config import Settings  # noqa: E402
from digest.db import Base, get_engine, session_factory  # noqa: E402
from digest.models import Source, utcnow  # noqa: E402
from digest.sources.collect import CollectResult, collect_due  # noqa: E402
from digest.sources.store import TitleIndex  # noqa: E402
from tests.fixtures.sources.server import Page, SourceServer  # noqa: E402

SELECTORS = {"item": "article.news", "title": "h2 a", "date": "time", "summary": "p.teaser"}
DIGEST = str(Path(sys.executable).with_name("digest"))
BATCH_RESULT = re.compile(r"collect_sources\[[^]]+\] succeeded in [\d.]+s: (\{[^}]*\})")


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
    ready.put(
        {
            "hits": sum(server.hits.values()),
            "not_modified": server.not_modified,
            "peak_per_host": max(server.peak_by_host.values(), default=0),
        }
    )
    server.stop()


@contextmanager
def source_server(sources: int, items: int) -> Iterator[tuple[str, Callable[[], dict[str, int]]]]:
    """The sources on 127.0.0.1 in a process of their own: (base URL, stop-and-count)."""
    ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=serve, args=(sources, items, ready, stop))
    process.start()
    base = ready.get(timeout=60)

    def counts() -> dict[str, int]:
        stop.set()
        served: dict[str, int] = ready.get(timeout=60)
        process.join(timeout=30)
        return served

    try:
        yield base, counts
    finally:
        if process.is_alive():
            stop.set()
            process.join(timeout=30)


def add_sources(url: str, base: str, sources: int) -> None:
    with session_factory(url).begin() as session:
        session.add_all(
            Source(
                name=f"source {n}",
                url=f"{base}/s{n}",
                kind="html" if n % 2 else "feed",
                selectors=SELECTORS if n % 2 else {},
            )
            for n in range(sources)
        )


def stored_items(url: str) -> int:
    with session_factory(url)() as session:
        return session.scalar(select(func.count()).select_from(models.Item)) or 0


def figures(
    path: str, args: argparse.Namespace, url: str, first: float, rerun: float
) -> dict[str, Any]:
    return {
        "path": path,
        "sources": args.sources,
        "items_per_source": args.items,
        "database": url.split(":", 1)[0].split("+")[0],
        "first_seconds": round(first, 3),
        "rerun_seconds": round(rerun, 3),
        "rerun_ratio": round(rerun / first, 4),
        "rerun_sources_per_s": round(args.sources / rerun, 1),
        "stored_items": stored_items(url),
        "title_read_ms": round(title_read_seconds(url) * 1000, 1),
        "per_host_limit": args.per_host,
    }


def title_read_seconds(url: str) -> float:
    """What one read of the recent titles costs on the store as the run left it (a worker
    task per source read it once per source with new items)."""
    with session_factory(url)() as session:
        started = time.perf_counter()
        TitleIndex(utcnow()).load(session)
        return time.perf_counter() - started


def inline(args: argparse.Namespace, url: str) -> dict[str, Any]:
    with source_server(args.sources, args.items) as (base, counts):
        add_sources(url, base, args.sources)
        factory = session_factory(url)
        now = utcnow()
        # The sources are on 127.0.0.1, an address the collector refuses by default.
        settings = Settings(allow_private_fetch=True, broker_url=None)
        options = {"concurrency": args.concurrency, "per_host": args.per_host, "settings": settings}
        first_titles, rerun_titles = TitleIndex(now), TitleIndex(now)
        started = time.perf_counter()
        first = collect_due(factory, now, titles=first_titles, **options)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rerun = collect_due(factory, now + timedelta(hours=2), titles=rerun_titles, **options)
        rerun_seconds = time.perf_counter() - started
        served = counts()
    new = sum(r.new for r in first)
    return figures("inline", args, url, first_seconds, rerun_seconds) | {
        "first_items_per_s": round(new / first_seconds, 1),
        "first_new_items": new,
        "first_errors": errors(first),
        "rerun_not_modified": sum(1 for r in rerun if r.not_modified),
        "rerun_new_items": sum(r.new + r.updated for r in rerun),
        "title_reads": first_titles.loads + rerun_titles.loads,
        "http_requests": served["hits"],
        "http_304": served["not_modified"],
        "peak_per_host": served["peak_per_host"],
    }


def errors(results: list[CollectResult]) -> int:
    return sum(1 for r in results if r.error)


def collected_since(url: str, since: Any) -> int:
    with session_factory(url)() as session:
        done = select(func.count()).where(Source.last_fetched_at >= since)
        return session.scalar(done) or 0


def tick_and_wait(app: Any, url: str, logs: list[Path], sources: int, tasks: int) -> float:
    """Send beat's collect tick; wait until every source was fetched (the seconds taken),
    then until the workers logged `tasks` more batch results."""
    since, before = utcnow(), len(batches(logs))
    started = time.perf_counter()
    app.send_task("workers.tasks.collect_due_sources", queue="collect")
    deadline = time.monotonic() + 900
    while collected_since(url, since) < sources:
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not collect every source in time")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    while len(batches(logs)) < before + tasks:
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not log every batch")
        time.sleep(0.05)
    return seconds


def on_workers(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    from celery import Celery

    redis_port = free_port()
    name = f"digest_bench_collect_{os.getpid()}"
    with (
        scratch_database(name) as url,
        running(redis_args(redis_port, workdir), redis_port, "redis-server"),
        source_server(args.sources, args.items) as (base, counts),
        ExitStack() as stack,
    ):
        add_sources(url, base, args.sources)
        broker = f"redis://127.0.0.1:{redis_port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")} | {
            "DIGEST_DATABASE_URL": url,
            "DIGEST_BROKER_URL": broker,
            "DIGEST_SECRET_KEY": "bench-secret",
            "DIGEST_ALLOW_PRIVATE_FETCH": "1",
            "DIGEST_COLLECT_PER_HOST": str(args.per_host),
            "DIGEST_COLLECT_CONCURRENCY": str(args.concurrency),
            "DIGEST_COLLECT_BATCH_SIZE": str(args.batch_size),
        }
        logs = [Path(workdir) / f"worker{i}.log" for i in range(args.workers)]
        workers = [
            stack.enter_context(worker(env, log, args.processes)) for log in logs
        ]  # fmt: skip
        app = Celery(broker=broker)
        deadline = time.monotonic() + 60
        while not all(" ready." in log.read_text(errors="replace") for log in logs):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise SystemExit("the workers did not come up")
            time.sleep(0.1)
        tasks = -(-args.sources // args.batch_size)
        first_seconds = tick_and_wait(app, url, logs, args.sources, tasks)
        first_batches = batches(logs)
        with session_factory(url).begin() as session:  # every source due again
            session.execute(update(Source).values(next_fetch_at=None))
        rerun_seconds = tick_and_wait(app, url, logs, args.sources, tasks)
        all_batches = batches(logs)
        served = counts()
        result = figures("workers", args, url, first_seconds, rerun_seconds)
    new = sum(b["new"] for b in first_batches)
    return result | {
        "first_items_per_s": round(new / first_seconds, 1),
        "first_new_items": new,
        "first_errors": sum(b["errors"] for b in first_batches),
        "rerun_new_items": sum(b["new"] for b in all_batches) - new,
        "title_reads": sum(b["title_reads"] for b in all_batches),
        "tasks": len(all_batches),
        "http_requests": served["hits"],
        "http_304": served["not_modified"],
        "peak_per_host": served["peak_per_host"],
        "workers": args.workers,
        "processes": args.workers * args.processes,
        "batch_size": args.batch_size,
    }


@contextmanager
def worker(env: dict[str, str], log: Path, processes: int) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            [DIGEST, "worker", "--queues", "collect", "--concurrency", str(processes)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def batches(logs: list[Path]) -> list[dict[str, int]]:
    """What each collect_sources task returned, from the workers' logs."""
    import ast

    found = []
    for log in logs:
        found += [ast.literal_eval(m) for m in BATCH_RESULT.findall(log.read_text())]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--paths", default="inline,workers")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the inline path's store (the workers' is PostgreSQL)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="`digest worker` processes")
    parser.add_argument("--processes", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--batch-size", type=int, default=50, help="sources per task")
    parser.add_argument("--concurrency", type=int, default=16, help="fetches per process")
    parser.add_argument("--per-host", type=int, default=16)
    args = parser.parse_args()
    paths = args.paths.split(",")
    if "workers" in paths and not Path(REDIS).exists():
        raise SystemExit(f"{REDIS} is needed for the workers' path (Debian package redis-server)")
    with tempfile.TemporaryDirectory() as folder:
        if "inline" in paths:
            if args.store == "postgresql":
                with scratch_database(f"digest_bench_inline_{os.getpid()}") as url:
                    print(json.dumps(inline(args, url)), flush=True)
            else:
                url = f"sqlite:///{folder}/bench.db"
                assert models.Item  # the tables are registered
                Base.metadata.create_all(get_engine(url))
                print(json.dumps(inline(args, url)), flush=True)
        if "workers" in paths:
            print(json.dumps(on_workers(args, folder)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
