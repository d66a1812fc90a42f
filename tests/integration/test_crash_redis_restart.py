"""Redis killed mid-send and started again on the same port, empty (it keeps nothing on
disk, so every queued batch chaser is gone): the worker reconnects, the issue still completes,
everyone served exactly once. Our own redis-server: the machine's Redis on 6379 is shared."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import truncate_all
from tests.crash_issue import make_issue, planned_addresses, wait_sent_progressing
from tests.faulty_smtp import CopyHandler, RestartableSMTPServer
from tests.processes import (
    RedisServer,
    WorkerProcess,
    digest_env,
    queue_send,
    reap,
    require_redis_server,
    stop_all,
    wait_until,
)

RECIPIENTS = 3000


def test_redis_restarted_mid_send_issue_completes(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = CopyHandler()
    broker = RedisServer(tmp_path / "redis").start()
    worker: WorkerProcess | None = None
    try:
        with RestartableSMTPServer(handler) as smtp:
            env = digest_env(pg_url, broker.url, smtp.port)
            worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=2)
            worker.wait_ready()
            queue_send(issue_id, env)
            # 900 messages: ~35 s at the ~25/s a loaded machine gives two pool processes.
            wait_until(lambda: len(handler.log) >= RECIPIENTS * 0.3, 120, 0.02, "30% delivered")

            broker.kill9()
            at_kill = len(handler.log)
            time.sleep(2)  # the worker notices; batches in progress finish without a broker
            during_outage = len(handler.log) - at_kill
            broker = RedisServer(tmp_path / "redis", port=broker.port).start()
            at_restart = len(handler.log)

            # Recovery is the kick on reconnect (no beat runs here): if it were lost, nothing
            # would chase the issue and the ledger would stop moving. Not a deadline on the
            # whole rest of the issue: ~2000 messages take over a minute when the machine is
            # loaded (two pool processes, ~25 messages/s), recovery or not.
            running = worker
            status, counts = wait_sent_progressing(
                pg_url,
                issue_id,
                stall=45,
                cap=300,
                context=lambda: (
                    f"copies {len(handler.log)} (at the Redis kill {at_kill}, at its "
                    f"restart {at_restart}); worker log tail:\n{running.output()[-4000:]}"
                ),
            )
            stop_all([worker])
    finally:
        reap([worker])
        broker.__exit__()

    planned = planned_addresses(pg_url, issue_id)
    per_rcpt = handler.log.per_recipient()
    duplicates = handler.log.duplicates()
    report_counts(
        f"\nplanned {len(planned)}, delivered at Redis kill {at_kill}, during the 2 s outage "
        f"{during_outage}, after restart {len(handler.log) - at_restart}, copies "
        f"{len(handler.log)}, duplicates {len(duplicates)}, ledger {counts}"
    )
    assert "lost" in worker.output(), "the worker never noticed the broker was gone"
    assert at_restart < RECIPIENTS, "the issue was done before Redis came back: nothing tested"
    assert status == "sent" and counts.sent == RECIPIENTS and counts.failed == 0
    assert set(per_rcpt) == planned and len(planned) == RECIPIENTS, "someone was skipped"
    # No worker died, so nothing was in flight twice: exactly once.
    assert not duplicates, f"served twice: {list(duplicates)[:5]}"
