"""Planning an issue's deliveries on PostgreSQL: one set-based INSERT ... SELECT.

    .venv/bin/python benchmarks/plan.py [--recipients 1000000]

Prints one JSON line: {"recipients", "planned", "plan_seconds", "rows_per_s", "load_seconds"}.
Target (issue 4): 1,000,000 deliveries in <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_subscribers, scratch_database
from digest.db import session_scope
from digest.delivery.ledger import plan_deliveries
from digest.models import Issue, MailingList


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_database("digest_bench_plan") as url:
        with session_scope(url) as session:
            lst = MailingList(slug="bench", name="Bench")
            session.add(lst)
            session.flush()
            issue = Issue(list_id=lst.id, number=1, subject="Bench", status="sending")
            session.add(issue)
            session.flush()
            list_id, issue_id = lst.id, issue.id
        load_seconds = load_subscribers(url, list_id, args.recipients)
        started = time.perf_counter()
        with session_scope(url) as session:
            planned = plan_deliveries(session, issue_id)
        seconds = time.perf_counter() - started
        with session_scope(url) as session:
            again = plan_deliveries(session, issue_id)  # idempotent: adds nothing
    print(
        json.dumps(
            {
                "recipients": args.recipients,
                "planned": planned,
                "replanned": again,
                "plan_seconds": round(seconds, 2),
                "rows_per_s": round(planned / seconds),
                "load_seconds": round(load_seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
