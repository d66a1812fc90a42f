"""The SMTP server misbehaves under a real worker: it answers 421 or 451 to one message in
ten (all are delivered after retries, once each), or it is down (the issue pauses itself after
DIGEST_PAUSE_AFTER_ERRORS transport errors in a row; once the server is up, `digest issues resume`
completes it)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from digest.db import session_scope
from digest.models import Issue
from tests.conftest import truncate_all
from tests.crash_issue import (
    attempts_by_address,
    issue_state,
    make_issue,
    planned_addresses,
    wait_sent_progressing,
)
from tests.faulty_smtp import CopyHandler, FlakyHandler, RestartableSMTPServer
from tests.helpers import run_digest
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

RECIPIENTS = 2000
PAUSE_AFTER = 30


def test_421_and_451_to_one_message_in_ten_all_delivered_after_retries(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = FlakyHandler(every=10)
    worker: WorkerProcess | None = None
    with RedisServer(tmp_path / "redis") as broker, RestartableSMTPServer(handler) as smtp:
        env = digest_env(pg_url, broker.url, smtp.port)
        try:
            worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=2)
            worker.wait_ready()
            queue_send(issue_id, env)
            status, counts = wait_sent_progressing(pg_url, issue_id, stall=45, cap=300)
            stop_all([worker])
        finally:
            reap([worker])

    planned = planned_addresses(pg_url, issue_id)
    per_rcpt = handler.log.per_recipient()
    attempts = attempts_by_address(pg_url, issue_id)
    refused = dict(handler.refused)
    codes = Counter(refused.values())
    report_counts(
        f"\nplanned {len(planned)}, refused first attempts {len(refused)} ({dict(codes)}), "
        f"copies {len(handler.log)}, attempts {dict(Counter(attempts.values()))}, ledger {counts}"
    )
    assert len(refused) == RECIPIENTS // 10 and codes["421"] and codes["451"]
    assert status == "sent" and counts.sent == RECIPIENTS and counts.failed == 0
    assert set(per_rcpt) == planned and len(planned) == RECIPIENTS, "someone was skipped"
    assert set(per_rcpt.values()) == {1}, "someone got the issue twice"
    # The refused ones took exactly one retry; nobody else was tried twice.
    assert {a for a, n in attempts.items() if n > 1} == set(refused)
    assert {attempts[a] for a in refused} == {2}


def test_smtp_down_pauses_issue_then_resume_completes_it(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = CopyHandler()
    smtp = RestartableSMTPServer(handler)  # not started: the server is down
    worker: WorkerProcess | None = None
    with RedisServer(tmp_path / "redis") as broker:
        env = digest_env(pg_url, broker.url, smtp.port, pause_after_errors=str(PAUSE_AFTER))
        try:
            worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=2)
            worker.wait_ready()
            queue_send(issue_id, env)
            wait_until(
                lambda: issue_state(pg_url, issue_id)[0] == "paused", 30, 0.1, "a self-pause"
            )
            with session_scope(pg_url) as session:
                errors = session.scalar(
                    select(Issue.consecutive_errors).where(Issue.id == issue_id)
                )
            time.sleep(2)  # longer than the back-off: a paused issue must stay untouched
            status_paused, counts_paused = issue_state(pg_url, issue_id)

            smtp.start()
            resumed = run_digest("issues", "resume", str(issue_id), env=env, timeout=60)
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
            status, counts = wait_sent_progressing(pg_url, issue_id, stall=45, cap=300)
            stop_all([worker])
        finally:
            smtp.stop()
            reap([worker])

    planned = planned_addresses(pg_url, issue_id)
    per_rcpt = handler.log.per_recipient()
    attempts = attempts_by_address(pg_url, issue_id)
    report_counts(
        f"\nplanned {len(planned)}, paused after {errors} transport errors in a row "
        f"(limit {PAUSE_AFTER}), ledger while paused {counts_paused}, tried while down "
        f"{sum(n > 1 for n in attempts.values())}, copies {len(handler.log)}, ledger {counts}"
    )
    assert errors is not None and errors >= PAUSE_AFTER
    assert status_paused == "paused" and counts_paused.sent == 0
    assert counts_paused.sending == 0 and counts_paused.failed == 0
    assert counts_paused.pending == RECIPIENTS, "the outage lost or gave up on someone"
    assert status == "sent" and counts.sent == RECIPIENTS and counts.failed == 0
    assert set(per_rcpt) == planned and len(planned) == RECIPIENTS, "someone was skipped"
    assert set(per_rcpt.values()) == {1}, "someone got the issue twice"
