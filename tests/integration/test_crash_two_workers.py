"""Two `digest worker` processes (2 pool processes each) on one issue share it and never
send the same delivery: each row is claimed once, each subscriber gets one copy. On a loaded
machine (CPU hogs, twice as many as cores), where every batch is slow: leases are renewed
while a batch works, so no row is taken over from a live worker."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from tests.conftest import truncate_all
from tests.crash_issue import (
    attempts_by_address,
    make_issue,
    planned_addresses,
    wait_sent,
)
from tests.faulty_smtp import CopyHandler, RestartableSMTPServer
from tests.processes import (
    RedisServer,
    WorkerProcess,
    cpu_hogs,
    digest_env,
    queue_send,
    reap,
    require_redis_server,
    stop_all,
)

RECIPIENTS = 2000


def test_two_workers_on_one_issue_never_send_the_same_delivery(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = CopyHandler()
    workers: list[WorkerProcess] = []
    with (
        ExitStack() as loaded,
        RedisServer(tmp_path / "redis") as broker,
        RestartableSMTPServer(handler) as smtp,
    ):
        # More chasers than pool processes, so both workers claim batches all the time.
        env = digest_env(pg_url, broker.url, smtp.port, send_fanout="8")
        try:
            workers = [
                WorkerProcess(env, tmp_path / f"worker{n}.log", concurrency=2) for n in (1, 2)
            ]
            for w in workers:
                w.wait_ready()
            queue_send(issue_id, env)
            loaded.enter_context(cpu_hogs())  # the whole send on a loaded machine
            status, counts = wait_sent(pg_url, issue_id, 150)
            load_average = os.getloadavg()[0]
            stop_all(workers)
        finally:
            reap(workers)

    results = [w.batch_results() for w in workers]
    claimed = [sum(r["claimed"] for r in rs) for rs in results]
    deferred = sum(r["deferred"] for rs in results for r in rs)
    refused = sum(r.get("refused", 0) for rs in results for r in rs)
    planned = planned_addresses(pg_url, issue_id)
    per_rcpt = handler.log.per_recipient()
    attempts = Counter(attempts_by_address(pg_url, issue_id).values())
    report_counts(
        f"\n[load {load_average:.1f}] planned {len(planned)}, claimed per worker "
        f"{claimed}, given back untried {deferred}, writes refused {refused}, copies "
        f"{len(handler.log)}, max copies per recipient {max(per_rcpt.values())}, claims per "
        f"delivery {dict(attempts)}, ledger {counts}"
    )
    assert all(claimed), "one worker never got a batch: the issue was not shared"
    # Each delivery claimed once: none taken over from a live worker (its attempts would
    # count two claims), none given back untried by a slow batch and claimed again.
    assert attempts == {1: RECIPIENTS}, "a delivery was taken over from a live worker"
    assert sum(claimed) == RECIPIENTS, "a delivery was claimed twice (or never)"
    assert refused == 0, "a live worker lost its lease"
    assert status == "sent" and counts.sent == RECIPIENTS
    assert set(per_rcpt) == planned and len(planned) == RECIPIENTS, "someone was skipped"
    assert set(per_rcpt.values()) == {1}, "someone got the issue twice"
