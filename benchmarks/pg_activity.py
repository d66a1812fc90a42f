"""What PostgreSQL is busy with: samples pg_stat_activity for a while and counts the active
statements of the databases matching a pattern, by their first words and wait event.

    .venv/bin/python benchmarks/pg_activity.py SECONDS [--databases 'digest_bench_send_%']

Run it beside another benchmark (say `benchmarks/send.py --recipients 1000000`, whose scratch
database is digest_bench_send_PID) to see which statement holds the backends: the share of
samples a statement is active in is the share of the backends' time it takes. Prints one JSON
line: samples, and the statements with their counts, most first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from benchmarks.common import ADMIN


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("--databases", default="digest_bench_send_%", help="a LIKE pattern")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between samples")
    args = parser.parse_args()
    seen: Counter[str] = Counter()
    samples = 0
    dsn = ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            rows = conn.execute(
                "SELECT left(query, 80), wait_event FROM pg_stat_activity"
                " WHERE datname LIKE %s AND state = 'active' AND pid <> pg_backend_pid()",
                (args.databases,),
            ).fetchall()
            samples += 1
            for query, wait in rows:
                statement = re.sub(r"\d+", "N", " ".join((query or "").split()))
                seen[f"{statement} [{wait or 'cpu'}]"] += 1
            time.sleep(args.every)
    print(json.dumps({"samples": samples, "statements": dict(seen.most_common(20))}))


if __name__ == "__main__":
    main()
