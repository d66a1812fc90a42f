"""The admin's subscriber search on PostgreSQL at 1,000,000 subscribers.

    .venv/bin/python benchmarks/subscribers.py [--subscribers 1000000] [--rounds 20] [--keep]

Loads subscribers with varied names and addresses (two lists, every status, 2 % suppressed)
into a scratch database, then times `digest.subscribers.search.search` page by page: the
first page, keyset pages deep into the list, text searches (common, rare, no match), filters
by list and status, suppression, and combinations. Prints one JSON line with p50/p95/max per
page in milliseconds, per kind and overall, and the machine's load. Target (issue 9): p95 per
page <= 50 ms. With --keep the database (digest_bench_subscribers) is left in place, and a later
run with --keep and the same --subscribers measures it again without loading it ("load_seconds"
is then null); drop it with `DROP DATABASE digest_bench_subscribers`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import func, select

from benchmarks.common import loaded_database
from digest.db import session_factory, session_scope
from digest.models import MailingList, Subscriber, SubscriptionStatus
from digest.subscribers import search

FIRST = [
    "ana",
    "maria",
    "jose",
    "luis",
    "carmen",
    "juan",
    "laura",
    "pedro",
    "sofia",
    "diego",
    "elena",
    "pablo",
    "lucia",
    "jorge",
    "marta",
]
LAST = [
    "garcia",
    "lopez",
    "martin",
    "sanchez",
    "perez",
    "gomez",
    "diaz",
    "ruiz",
    "hernandez",
    "jimenez",
    "moreno",
    "alvarez",
]
DOMAINS = ["example.org", "coop.example", "mail.example.net", "news.example.com"]
STATUSES = (
    ["confirmed"] * 85 + ["pending"] * 5 + ["unsubscribed"] * 7 + ["bounced"] * 2 + ["complained"]
)


def load(url: str, lists: tuple[int, int], count: int) -> float:
    started = time.perf_counter()
    rng = random.Random(9)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY subscribers (id, email, name, attributes, created_at) FROM STDIN"
        ) as cp:
            for i in range(1, count + 1):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                email = f"{first}.{last}{i}@{DOMAINS[i % 4]}"
                cp.write_row((i, email, f"{first.title()} {last.title()}", "{}", "2024-01-01"))
        with cur.copy(
            "COPY subscriptions (id, list_id, subscriber_id, status, preferences, created_at)"
            " FROM STDIN"
        ) as cp:
            n = 0
            for i in range(1, count + 1):
                for list_id in lists if i % 3 == 0 else lists[:1]:
                    n += 1
                    cp.write_row((n, list_id, i, rng.choice(STATUSES), "{}", "2024-01-01"))
        cur.execute(
            "INSERT INTO suppressions (email, reason, detail, created_at) "
            "SELECT email, 'bounce', '550', now() FROM subscribers WHERE id % 50 = 0"
        )
        cur.execute("SELECT setval('subscribers_id_seq', %s)", (count,))
        cur.execute("SELECT setval('subscriptions_id_seq', %s)", (n,))
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE subscribers")
        conn.execute("VACUUM ANALYZE subscriptions")
        conn.execute("VACUUM ANALYZE suppressions")
    return time.perf_counter() - started


NAME = "digest_bench_subscribers"


def reuse(url: str, count: int) -> tuple[int, int] | None:
    """A kept database's two lists, when it holds `count` subscribers."""
    with session_scope(url) as session:
        held = session.scalar(select(func.count()).select_from(Subscriber))
        ids = session.scalars(select(MailingList.id).order_by(MailingList.id)).all()
    return (ids[0], ids[1]) if held == count and len(ids) == 2 else None


def load_lists(url: str, count: int) -> tuple[int, int]:
    """Two lists and `count` subscribers; the lists' ids."""
    with session_scope(url) as session:
        a, b = MailingList(slug="news", name="News"), MailingList(slug="jobs", name="Jobs")
        session.add_all([a, b])
        session.flush()
        lists = (a.id, b.id)
    load(url, lists, count)
    return lists


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, and reuse one a run kept"
    )
    args = parser.parse_args()
    with loaded_database(
        NAME,
        args.keep,
        lambda url: reuse(url, args.subscribers),
        lambda url: load_lists(url, args.subscribers),
    ) as (url, lists, load_seconds):
        news, jobs = lists
        rare = f"lopez{args.subscribers // 2}"
        kinds: dict[str, list[search.Query]] = {
            "first_page": [search.Query()],
            "text_common": [search.Query(text="maria"), search.Query(text="Garcia")],
            "text_rare": [search.Query(text=rare), search.Query(text="coop.example", list_id=jobs)],
            "text_none": [search.Query(text="zzzq-nobody")],
            "list_status": [
                search.Query(list_id=news, status=SubscriptionStatus.CONFIRMED),
                search.Query(list_id=jobs, status=SubscriptionStatus.COMPLAINED),
                search.Query(status=SubscriptionStatus.BOUNCED),
            ],
            "suppressed": [
                search.Query(suppressed=search.Suppressed.YES),
                search.Query(suppressed=search.Suppressed.NO, list_id=news),
            ],
            "text_and_filters": [
                search.Query(text="sofia", list_id=jobs, status=SubscriptionStatus.CONFIRMED),
                search.Query(text="ruiz", suppressed=search.Suppressed.YES),
            ],
        }
        factory = session_factory(url)
        timings: dict[str, list[float]] = {k: [] for k in kinds}
        timings["keyset_deep"] = []
        with factory() as session:
            search.search(session, search.Query())  # warm the pool and the cache
            for _ in range(args.rounds):
                for kind, queries in kinds.items():
                    for query in queries:
                        # Each query's first three pages, following the keyset.
                        current = query
                        for _page in range(3):
                            started = time.perf_counter()
                            page = search.search(session, current)
                            timings[kind].append((time.perf_counter() - started) * 1000)
                            if page.next_before is None:
                                break
                            current = search.Query(
                                text=query.text,
                                list_id=query.list_id,
                                status=query.status,
                                suppressed=query.suppressed,
                                before_id=page.next_before,
                            )
                # A page deep in the list: half-way, a quarter from the end.
                for before in (args.subscribers // 2, args.subscribers // 4):
                    started = time.perf_counter()
                    search.search(session, search.Query(before_id=before, list_id=news))
                    timings["keyset_deep"].append((time.perf_counter() - started) * 1000)
                session.rollback()
    every = [t for values in timings.values() for t in values]
    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "pages_timed": len(every),
                "p50_ms": round(statistics.median(every), 2),
                "p95_ms": round(pct(every, 95), 2),
                "max_ms": round(max(every), 2),
                "by_kind_p95_ms": {k: round(pct(v, 95), 2) for k, v in timings.items()},
                "load_seconds": None if load_seconds is None else round(load_seconds, 1),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
