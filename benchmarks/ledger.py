"""The send path's bookkeeping alone: claims, result writes and lease renewals on PostgreSQL.

`digest.delivery.send.send_batch` runs in K processes against a planned issue of N
recipients, over a transport that sends nothing: it reports each recipient 'sent' in chunks of
64 (as the SMTP transport's reporter does) at a steady rate per process, so the ledger is
written as often as in a real send. Prints one JSON line with the CPU seconds per 1,000
messages of the sending processes ("workers") and of the PostgreSQL backends serving them:
the cost of the ledger without the wire's.

    .venv/bin/python benchmarks/ledger.py --recipients 50000 --processes 2
    .venv/bin/python benchmarks/ledger.py --recipients 50000 --profile /tmp/ledger.prof
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import scratch_database
from benchmarks.send import CpuMeter, backend_pids, make_issue, per_1000
from digest.delivery.recipient import Recipient
from digest.delivery.transports import More, Render, Sender, SendResult

CHUNK = 64


class NullTransport:
    """Reports every recipient sent, `rate` per second, in chunks of CHUNK."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def send(
        self,
        envelope_from: Sender,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        started = time.monotonic()
        for start in range(0, len(batch), CHUNK):
            due = started + (start + CHUNK) / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield [
                SendResult(r.delivery_id, "sent", "250 ok") for r in batch[start : start + CHUNK]
            ]

    def close(self) -> None:
        pass


def sender(
    url: str,
    issue_id: int,
    batch_size: int,
    rate: float,
    profile: str | None,
    done: Any,
    leave: Any,
) -> None:
    from digest.config import get_settings
    from digest.db import session_factory
    from digest.delivery.send import new_owner, send_batch

    settings = get_settings()
    sf = session_factory(url)
    owner = new_owner()
    transport = NullTransport(rate)
    profiler = cProfile.Profile(time.thread_time) if profile else None
    if profiler is not None:
        profiler.enable()
    while send_batch(sf, issue_id, owner, transport, settings, size=batch_size).claimed:
        pass
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{profile}.{os.getpid()}")
    done.set()  # its connections stay open until the parent has read their backends' CPU
    leave.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0, help="msg/s per process")
    parser.add_argument("--profile", help="cProfile each sender to PROFILE.<pid>")
    args = parser.parse_args()
    os.environ["DIGEST_SECRET_KEY"] = "bench-secret"
    with scratch_database(f"digest_bench_ledger_{os.getpid()}") as url:
        os.environ["DIGEST_DATABASE_URL"] = url
        issue_id, _, _ = make_issue(url, args.recipients)
        from digest.db import dispose_engines

        dispose_engines()
        ctx = multiprocessing.get_context("fork")
        dones = [ctx.Event() for _ in range(args.processes)]
        leave = ctx.Event()
        procs = [
            ctx.Process(
                target=sender,
                args=(url, issue_id, args.batch_size, args.rate, args.profile, done, leave),
            )
            for done in dones
        ]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        postgres = CpuMeter(lambda: backend_pids(url))
        postgres.start()  # none yet: every backend counts from its start
        started = time.perf_counter()
        for p in procs:
            p.start()
        for done in dones:
            done.wait()
        seconds = time.perf_counter() - started
        postgres.stop()
        leave.set()
        for p in procs:
            p.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        pg = postgres.used
        workers = (after.ru_utime - children.ru_utime, after.ru_stime - children.ru_stime)
        from digest.db import session_scope
        from digest.delivery.ledger import issue_progress

        with session_scope(url) as s:
            progress = issue_progress(s, issue_id)
        print(
            json.dumps(
                {
                    "recipients": args.recipients,
                    "seconds": round(seconds, 2),
                    "cpu_per_1000": {
                        "workers": per_1000(workers, args.recipients),
                        "postgres": per_1000(pg, args.recipients),
                    },
                    "load_average": os.getloadavg()[0],
                    "sent": progress.sent,
                    "open": progress.pending + progress.sending,
                }
            )
        )


if __name__ == "__main__":
    main()
