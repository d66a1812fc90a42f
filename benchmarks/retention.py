"""Planning and claiming as the delivery ledger grows, and what retention gives back.

    .venv/bin/python benchmarks/retention.py [--issues 24] [--per-issue 1000000]

On a scratch PostgreSQL database: `--per-issue` confirmed subscribers; an issue planned and
claimed on an empty ledger (the baseline); then `--issues` sent issues of `--per-issue`
delivery rows each, one a month back from now (built server-side with generate_series);
planning a new issue and claiming its batches with that history ("before"); retention at 13
months (`digest.retention.prune`, the same chunks as `digest retention`); and planning and
claiming again ("after"). Prints one JSON line; times in seconds, claims in milliseconds
(median and 95th percentile of `--claims` claims of 500).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text

from benchmarks.common import load_subscribers, scratch_database
from digest.db import session_factory, session_scope
from digest.delivery.ledger import claim, plan_deliveries
from digest.models import Delivery, Issue, MailingList, utcnow
from digest.retention import prune

MONTH = timedelta(days=30.44)


def new_issue(url: str, list_id: int, number: int, status: str = "sending") -> int:
    with session_scope(url) as session:
        issue = Issue(list_id=list_id, number=number, subject=f"Bench {number}", status=status)
        session.add(issue)
        session.flush()
        return issue.id


def plan_and_claim(url: str, list_id: int, number: int, claims: int) -> dict[str, float]:
    """Plan a new issue to every subscriber, then claim `claims` batches of 500 from it."""
    issue_id = new_issue(url, list_id, number)
    started = time.perf_counter()
    with session_scope(url) as session:
        planned = plan_deliveries(session, issue_id)
    plan_seconds = time.perf_counter() - started
    with session_scope(url) as session:
        session.execute(text("ANALYZE deliveries"))
    sf = session_factory(url)
    times = []
    for n in range(claims):
        started = time.perf_counter()
        with sf() as session:
            got = claim(session, issue_id, f"bench/{n}", 500, lease_seconds=300)
            session.commit()
        times.append((time.perf_counter() - started) * 1000)
        assert len(got.recipients) == 500
    times.sort()
    return {
        "planned": planned,
        "plan_seconds": round(plan_seconds, 2),
        "claim_ms_median": round(statistics.median(times), 2),
        "claim_ms_p95": round(times[int(len(times) * 0.95) - 1], 2),
    }


def build_history(url: str, list_id: int, issues: int, per_issue: int) -> float:
    """`issues` sent issues, the k-th sent k months ago, each with `per_issue` sent rows."""
    started = time.perf_counter()
    now = utcnow()
    for k in range(1, issues + 1):
        sent_at = now - k * MONTH
        issue_id = new_issue(url, list_id, 1000 + k, status="sent")
        with session_scope(url) as session:
            session.execute(
                text("UPDATE issues SET sent_at = :at, created_at = :at WHERE id = :id"),
                {"id": issue_id, "at": sent_at},
            )
            session.execute(
                text(
                    "INSERT INTO deliveries (issue_id, subscriber_id, subscription_id, email, "
                    "name, status, attempts, sent_at) "
                    "SELECT :id, g, g, 'reader' || g || '@example.org', '', 'sent', 1, :at "
                    "FROM generate_series(1, :n) AS g"
                ),
                {"id": issue_id, "at": sent_at, "n": per_issue},
            )
        took = time.perf_counter() - started
        print(f"history: issue {k}/{issues} ({took:.0f} s)", file=sys.stderr, flush=True)
    with session_scope(url) as session:
        session.execute(text("ANALYZE deliveries"))
    return time.perf_counter() - started


def rows(url: str) -> int:
    with session_scope(url) as session:
        return int(session.scalar(select(func.count()).select_from(Delivery)) or 0)


def table_mb(url: str) -> int:
    with session_scope(url) as session:
        size = session.scalar(text("SELECT pg_total_relation_size('deliveries')"))
    return int(size or 0) // 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issues", type=int, default=24)
    parser.add_argument("--per-issue", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=40)
    parser.add_argument("--months", type=int, default=13)
    args = parser.parse_args()
    out: dict[str, object] = {"issues": args.issues, "per_issue": args.per_issue}
    with scratch_database("digest_bench_retention") as url:
        with session_scope(url) as session:
            lst = MailingList(slug="bench", name="Bench")
            session.add(lst)
            session.flush()
            list_id = lst.id
        out["load_seconds"] = round(load_subscribers(url, list_id, args.per_issue), 2)
        out["empty"] = plan_and_claim(url, list_id, 1, args.claims)
        out["build_seconds"] = round(build_history(url, list_id, args.issues, args.per_issue), 1)
        out["rows_before"] = rows(url)
        out["table_mb_before"] = table_mb(url)
        out["before"] = plan_and_claim(url, list_id, 2, args.claims)
        done = prune(session_factory(url), months=args.months)
        out["retention"] = {
            "issues": done.issues,
            "rows_removed": done.deliveries,
            "seconds": round(done.seconds, 1),
            "rows_per_s": round(done.deliveries / done.seconds) if done.seconds else None,
            "chunks": done.chunks,
        }
        with session_scope(url) as session:
            session.execute(text("ANALYZE deliveries"))
        out["rows_after"] = rows(url)
        out["after"] = plan_and_claim(url, list_id, 3, args.claims)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
