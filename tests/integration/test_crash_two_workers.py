"""Two `digest worker` processes (2 pool processes each) on one issue share it and never
send the same delivery: each row is claimed once, each subscriber gets one copy."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
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
    digest_env,
    queue_send,
    reap,
    require_redis_server,
    stop_all,
)

RECIPIENTS = 4000
# A batch that runs past its time (a loaded machine) hands its untried rows back as
# 'deferred', and they are claimed again: those claims are not a second claim of a send.
CLAIMED = re.compile(
    r"send_batch\[[^]]+\] succeeded in [\d.]+s: \{'claimed': (\d+),.*?'deferred': (\d+)\}"
)


def test_two_workers_on_one_issue_never_send_the_same_delivery(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = CopyHandler()
    workers: list[WorkerProcess] = []
    with RedisServer(tmp_path / "redis") as broker, RestartableSMTPServer(handler) as smtp:
        # More chasers than pool processes, so both workers claim batches all the time.
        env = digest_env(pg_url, broker.url, smtp.port, send_fanout="8")
        try:
            workers = [
                WorkerProcess(env, tmp_path / f"worker{n}.log", concurrency=2) for n in (1, 2)
            ]
            for w in workers:
                w.wait_ready()
            queue_send(issue_id, env)
            status, counts = wait_sent(pg_url, issue_id, 50)
            stop_all(workers)
        finally:
            reap(workers)

    claimed = [
        sum(int(n) - int(deferred) for n, deferred in CLAIMED.findall(w.output())) for w in workers
    ]
    planned = planned_addresses(pg_url, issue_id)
    per_rcpt = handler.log.per_recipient()
    attempts = Counter(attempts_by_address(pg_url, issue_id).values())
    report_counts(
        f"\nplanned {len(planned)}, claimed per worker {claimed}, copies {len(handler.log)}, "
        f"max copies per recipient {max(per_rcpt.values())}, claims per delivery "
        f"{dict(attempts)}, ledger {counts}"
    )
    assert all(claimed), "one worker never got a batch: the issue was not shared"
    assert sum(claimed) == RECIPIENTS, "a delivery was claimed twice (or never)"
    assert attempts == {1: RECIPIENTS}
    assert status == "sent" and counts["sent"] == RECIPIENTS
    assert set(per_rcpt) == planned and len(planned) == RECIPIENTS, "someone was skipped"
    assert set(per_rcpt.values()) == {1}, "someone got the issue twice"
