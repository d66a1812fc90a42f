"""`digest subscribers import` of a 1,000,000-row CSV on PostgreSQL, into a list that already
holds half of those addresses (so the merge both adds and updates).

    .venv/bin/python benchmarks/subscribers_import.py [--rows 1000000]

Prints one JSON line: rows, seconds, rows per second, the counts, and the process's peak
memory before and after the import (flat: the file is streamed through COPY, nothing per row
is kept). Target (issue 9): 1,000,000 rows in <= 60 s with flat memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_subscribers, scratch_database
from digest.db import session_scope
from digest.models import MailingList
from digest.subscribers.service import import_csv


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with scratch_database("digest_bench_import") as url, tempfile.TemporaryDirectory() as tmp:
        with session_scope(url) as session:
            lst = MailingList(slug="bench", name="Bench")
            session.add(lst)
            session.flush()
            list_id = lst.id
        # Half the file's addresses are subscribed already (reader1 .. readerN/2).
        load_subscribers(url, list_id, args.rows // 2)
        csv_path = Path(tmp) / "subscribers.csv"
        with csv_path.open("w", encoding="utf-8") as out:
            out.write("email,name,city\n")
            for i in range(1, args.rows + 1):
                out.write(f"reader{i}@example.org,Reader {i} Renamed,City {i % 100}\n")
            out.write("not an address,,\n")
            out.write("reader1@example.org,Twice,\n")
        before = peak_mb()
        started = time.perf_counter()
        with session_scope(url) as session, csv_path.open(newline="", encoding="utf-8") as f:
            result = import_csv(session, list_id, f, "confirmed")
        seconds = time.perf_counter() - started
        after = peak_mb()
    print(
        json.dumps(
            {
                "rows": args.rows,
                "seconds": round(seconds, 1),
                "rows_per_s": round(args.rows / seconds),
                "added": result.added,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "rejected": len(result.errors),
                "peak_rss_mb_before": round(before, 1),
                "peak_rss_mb_after": round(after, 1),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
