"""The delivery report of one issue on PostgreSQL at 1,000,000 recipients.

    .venv/bin/python benchmarks/report.py [--recipients 1000000] [--rounds 10] [--keep]

On a scratch database: `--recipients` confirmed subscribers and an issue planned to them all,
then shaped as a sent issue (97 % sent, 1 % failed, 1 % skipped; 1 % hard or soft bounces and
0.1 % complaints recorded against it; 0.5 % unsubscribed after their copy; 1 % joined after the
send, who are also the ones "send to the rest" would reach). Times, in milliseconds:
`digest.delivery.report.issue_report` (every count the report page shows; the page reads it
once per visit) and `report_page` for each kind: its first page, a page half-way through its
rows (keyset), and an address search. Prints one JSON line with median, p95 and max per call.
With --keep the database (digest_bench_report) is left in place, and a later run with --keep
and the same --recipients measures it again without loading it ("setup_seconds" is then null);
the models' indexes it lacks are made first, so a change of indexes is measured on it too. Drop
it with `DROP DATABASE digest_bench_report`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import func, select

from benchmarks.common import load_subscribers, loaded_database
from digest.db import session_factory, session_scope
from digest.delivery.ledger import plan_deliveries
from digest.delivery.report import KINDS, Kind, _query, issue_report, report_page
from digest.models import Delivery, Issue, MailingList

NAME = "digest_bench_report"


def shape(url: str, list_id: int, issue_id: int, recipients: int) -> None:
    """Make the planned issue look sent a day ago, with what follows a real send."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    joined = recipients // 100
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE deliveries SET attempts = 1, status = CASE WHEN id %% 100 = 0 THEN 'failed'"
            " WHEN id %% 100 = 1 THEN 'skipped' ELSE 'sent' END,"
            " sent_at = CASE WHEN id %% 100 > 1 THEN now() - interval '1 day'"
            " + (id %% 3600) * interval '1 second' END,"
            " last_error = CASE WHEN id %% 100 = 0 THEN '550 5.1.1 no such user' END"
            " WHERE issue_id = %s",
            (issue_id,),
        )
        conn.execute(
            "INSERT INTO delivery_events (verdict, action, via, matched, delivery_id, issue_id,"
            " subscriber_id, email, domain, status, detail, created_at)"
            " SELECT CASE WHEN id %% 1000 = 2 THEN 'complaint' WHEN id %% 2 = 0 THEN 'hard'"
            " ELSE 'soft' END, 'suppressed', 'inbound', true, id, issue_id, subscriber_id,"
            " email, 'example.org', '5.1.1', 'returned', now() - interval '20 hours'"
            " FROM deliveries WHERE issue_id = %s AND (id %% 100 IN (2, 3) OR id %% 1000 = 2)",
            (issue_id,),
        )
        conn.execute(
            "INSERT INTO events (kind, subscriber_id, list_id, issue_id, detail, created_at)"
            " SELECT 'unsubscribed', subscriber_id, %s, NULL, '{}', now() - interval '12 hours'"
            " FROM deliveries WHERE issue_id = %s AND id %% 200 = 5",
            (list_id, issue_id),
        )
        conn.execute(
            "INSERT INTO subscribers (id, email, name, attributes, created_at)"
            " SELECT g, 'late' || g || '@example.org', 'Late ' || g, '{}', now()"
            " FROM generate_series(%s::bigint, %s::bigint) AS g",
            (recipients + 1, recipients + joined),
        )
        conn.execute(
            "INSERT INTO subscriptions (id, list_id, subscriber_id, status, preferences,"
            " created_at, confirmed_at)"
            " SELECT g, %s, g, 'confirmed', '{}', now(), now()"
            " FROM generate_series(%s::bigint, %s::bigint) AS g",
            (list_id, recipients + 1, recipients + joined),
        )
        conn.execute(
            "UPDATE issues SET status = 'sent', sent_at = now() WHERE id = %s", (issue_id,)
        )
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("deliveries", "delivery_events", "events", "subscribers", "subscriptions"):
            conn.execute(f"VACUUM ANALYZE {table}")


def reuse(url: str, recipients: int) -> int | None:
    """A kept database's issue id, when it holds `recipients` deliveries."""
    with session_scope(url) as session:
        issue_id = session.scalar(select(func.min(Issue.id)))
        held = session.scalar(select(func.count()).where(Delivery.issue_id == issue_id))
    return None if issue_id is None or held != recipients else int(issue_id)


def load(url: str, recipients: int) -> int:
    """A list of `recipients`, an issue planned to them all and shaped as sent; its id."""
    with session_scope(url) as session:
        lst = MailingList(slug="news", name="News")
        session.add(lst)
        session.flush()
        list_id = lst.id
        issue = Issue(list_id=list_id, number=1, subject="Bench", status="sending")
        session.add(issue)
        session.flush()
        issue_id = issue.id
    load_subscribers(url, list_id, recipients)
    with session_scope(url) as session:
        plan_deliveries(session, issue_id)
    shape(url, list_id, issue_id, recipients)
    return issue_id


def timed(call: Callable[[], object], rounds: int) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
        "max_ms": round(times[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, and reuse one a run kept"
    )
    args = parser.parse_args()
    out: dict[str, object] = {"recipients": args.recipients}
    with loaded_database(
        NAME,
        args.keep,
        lambda url: reuse(url, args.recipients),
        lambda url: load(url, args.recipients),
    ) as (url, issue_id, setup_seconds):
        out["setup_seconds"] = None if setup_seconds is None else round(setup_seconds, 1)
        with session_factory(url)() as session:
            issue = session.get(Issue, issue_id)
            assert issue is not None
            report = issue_report(session, issue)  # warms the pool and the cache
            out["counts"] = report.counts
            out["issue_report"] = timed(lambda: issue_report(session, issue), args.rounds)
            pages: dict[str, object] = {}
            for kind in KINDS:
                k: Kind = kind  # type: ignore[assignment]
                first = report_page(session, issue, k)
                query, key, _email = _query(issue, k, report.first_sent_at)
                half_way = query.order_by(key).offset(report.counts[k] // 2).limit(1)
                middle = int(session.execute(half_way).scalar() or 0)
                pages[kind] = {
                    "first": timed(lambda k=k: report_page(session, issue, k), args.rounds),
                    "half_way": timed(
                        lambda k=k, m=middle: report_page(session, issue, k, after=m),
                        args.rounds,
                    ),
                    "search": timed(
                        lambda k=k: report_page(session, issue, k, search="reader12345"),
                        args.rounds,
                    ),
                    "rows": report.counts[k],
                    "first_page_rows": len(first.rows),
                }
                session.rollback()
            out["report_page"] = pages
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
