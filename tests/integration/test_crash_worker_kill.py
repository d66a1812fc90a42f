"""kill -9 mid-send, then the issue completes: every planned subscriber gets it, and the only
duplicates are messages the dead processes had in flight (claimed under their lease, not yet
written to the ledger), each with its first copy's Message-ID. Three ways to die: the whole
`digest worker` (pool included) with a new worker started after it, the whole worker with a
second one still running, and one pool process of a worker. On a loaded machine (CPU hogs,
twice as many as cores): batches outlive their lease, and only the dead lose theirs. Real
processes: workers, a private redis-server, PostgreSQL, an SMTP server on 127.0.0.1."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import truncate_all
from tests.crash_issue import (
    attempts_by_address,
    issue_state,
    leased_by,
    leasing_pids,
    make_issue,
    planned_addresses,
    wait_sent,
    wait_sent_progressing,
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
    socket_owners,
    stop_all,
    wait_until,
)

RECIPIENTS = 3000
LOADED_RECIPIENTS = 1000  # the SMTP server gets a fraction of a core: ~30 messages/s
BATCH = 100
CONCURRENCY = 2


@pytest.mark.parametrize("finisher", ["new worker", "remaining worker", "same worker"])
def test_kill9_worker_mid_send_then_issue_completes(
    pg_url: str, tmp_path: Path, finisher: str, report_counts: Callable[[str], None]
) -> None:
    """finisher: who completes the issue after the kill -9. 'same worker': only one pool
    process of the worker is killed; its main process re-queues the lost task."""
    require_redis_server()
    truncate_all(pg_url)
    recipients = LOADED_RECIPIENTS
    issue_id = make_issue(pg_url, recipients)
    handler = CopyHandler()
    workers: list[WorkerProcess] = []
    with (
        ExitStack() as loaded,
        RedisServer(tmp_path / "redis") as broker,
        RestartableSMTPServer(handler) as smtp,
    ):
        # 'new worker': as many chasers as the victim has processes, so it holds them all and
        # they die with it (unacked in Redis for an hour): the newcomer must re-kick the issue.
        fanout = CONCURRENCY if finisher == "new worker" else 2 * CONCURRENCY
        # The SMTP timeout outlasts the held replies (the aim's 10 s, then the kill): a
        # sender giving up on a held reply retries a message the server then accepts, a
        # legitimate duplicate that was not in flight at the kill (seen on a loaded machine).
        env = digest_env(
            pg_url,
            broker.url,
            smtp.port,
            batch_size=str(BATCH),
            send_fanout=str(fanout),
            smtp_timeout="60",
        )
        try:
            victim = WorkerProcess(env, tmp_path / "victim.log", CONCURRENCY)
            workers.append(victim)
            if finisher == "remaining worker":
                workers.append(WorkerProcess(env, tmp_path / "survivor.log", CONCURRENCY))
            for w in workers:
                w.wait_ready()

            queue_send(issue_id, env)
            loaded.enter_context(cpu_hogs())  # from here on: the send, the kill, the rest
            wait_until(lambda: len(handler.log) >= recipients * 0.3, 90, 0.02, "30% delivered")

            # Hold the server's answers so the victim is caught mid-batch, not between two
            # batches (a batch's send phase is a few ms here, too short to aim a kill at).
            # Aim only at a pool process blocked on a held reply (the server has its message,
            # it waits for the answer): its batch is leased and that message cannot reach the
            # ledger before the kill. A lease alone is no proof: a process whose replies all
            # came before `held` was set records them and frees its lease in between.
            handler.held.set()
            try:

                def blocked_holding_a_lease() -> set[int]:
                    waiting = handler.waiting_ports()
                    blocked = socket_owners(victim.pool_pids(), waiting, smtp.port)
                    return blocked & leasing_pids(pg_url, issue_id) if blocked else set()

                busy = wait_until(
                    blocked_holding_a_lease,
                    10,
                    0.01,
                    "a pool process of the victim blocked on a held reply, holding a lease",
                )
                at_kill = len(handler.log)
                if finisher == "same worker":
                    dead = victim.kill9_pool_process(min(busy))
                else:
                    dead = victim.kill9()
                    workers.remove(victim)
            finally:
                handler.held.clear()
            # The dead processes' leases stay put until they expire: that is what was in flight,
            # at most two claimed batches per dead pool process (a run's claim on the wire and
            # the next one it took while that one went).
            in_flight = leased_by(pg_url, issue_id, dead)
            bound = 2 * BATCH * (1 if finisher == "same worker" else CONCURRENCY)
            if finisher == "new worker":
                workers.append(WorkerProcess(env, tmp_path / "newcomer.log", CONCURRENCY))
            status, counts = wait_sent(pg_url, issue_id, 150)
            stop_all(workers)
        finally:
            reap(workers)

    planned = planned_addresses(pg_url, issue_id)
    per_rcpt = handler.log.per_recipient()
    duplicates = handler.log.duplicates()
    attempts = attempts_by_address(pg_url, issue_id)
    everyone = [victim, *(w for w in workers if w is not victim)]
    refused = sum(r.get("refused", 0) for w in everyone for r in w.batch_results())
    # In flight and already accepted by the server: the ledger never heard, so sent again.
    resent = in_flight & {c.rcpt for c in handler.log.snapshot()[:at_kill]}
    report_counts(
        f"\n[{finisher}] killed {len(dead)} processes, planned {len(planned)}, delivered "
        f"before the kill {at_kill}, in flight at the kill {len(in_flight)} (bound "
        f"{bound}), of which delivered before the kill {len(resent)}, "
        f"copies {len(handler.log)}, duplicates {len(duplicates)}, claims per delivery "
        f"{dict(Counter(attempts.values()))}, writes refused {refused}, ledger {counts}"
    )
    assert 0 < at_kill < recipients, "the kill did not land mid-send"
    assert in_flight, "the dead worker held no lease: nothing was reclaimed"
    assert len(in_flight) <= bound
    assert status == "sent" and counts.sent == recipients and counts.failed == 0
    assert set(per_rcpt) == planned and len(planned) == recipients, "someone was skipped"
    # Claims exact: what the dead held was claimed once more, nothing else was (a live
    # worker's batch, slow as it is here, never loses its lease).
    assert attempts == {a: 2 if a in in_flight else 1 for a in planned}
    assert refused == 0, "a live worker lost its lease"
    assert set(duplicates) <= in_flight, "a duplicate that was not in flight at the kill"
    assert resent <= set(duplicates), "an in-flight copy was not sent again: lease not reclaimed?"
    for rcpt, message_ids in duplicates.items():
        assert len(set(message_ids)) == 1, f"{rcpt}: copies with different Message-IDs"
        assert len(message_ids) == 2, f"{rcpt} got {len(message_ids)} copies"


def test_sigterm_mid_send_exits_cleanly_and_loses_nothing(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    """SIGTERM (a deploy, `docker stop`) mid-send: Celery's warm shutdown lets the batches in
    progress finish and reach the ledger, the worker exits 0, and its queued chasers go back
    to Redis, so the next worker completes the issue with nobody served twice."""
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = CopyHandler()
    workers: list[WorkerProcess] = []
    with RedisServer(tmp_path / "redis") as broker, RestartableSMTPServer(handler) as smtp:
        env = digest_env(pg_url, broker.url, smtp.port, batch_size=str(BATCH))
        try:
            first = WorkerProcess(env, tmp_path / "first.log", CONCURRENCY)
            workers.append(first)
            first.wait_ready()
            queue_send(issue_id, env)
            wait_until(lambda: len(handler.log) >= RECIPIENTS * 0.3, 40, 0.02, "30% delivered")

            at_term = len(handler.log)
            started = time.monotonic()
            code = first.stop(timeout=30)
            stop_seconds = time.monotonic() - started
            workers.remove(first)
            quits = handler.quits
            _, counts_stopped = issue_state(pg_url, issue_id)

            workers.append(WorkerProcess(env, tmp_path / "second.log", CONCURRENCY))
            status, counts = wait_sent_progressing(pg_url, issue_id, stall=45, cap=300)
            stop_all(workers)
        finally:
            reap(workers)

    per_rcpt = handler.log.per_recipient()
    report_counts(
        f"\nSIGTERM after {at_term} delivered: exit code {code} in {stop_seconds:.1f} s, "
        f"SMTP sessions closed with QUIT {quits}, ledger "
        f"then {counts_stopped}; finally copies {len(handler.log)}, ledger {counts}"
    )
    assert code == 0, first.output()[-3000:]
    assert quits > 0, "the stopping worker left its SMTP sessions without QUIT"
    assert at_term < RECIPIENTS and counts_stopped.sent < RECIPIENTS, "stopped too late"
    assert counts_stopped.sending == 0, "a batch was left leased: warm shutdown cut it short"
    assert status == "sent" and counts.sent == RECIPIENTS
    assert len(per_rcpt) == RECIPIENTS and set(per_rcpt.values()) == {1}
