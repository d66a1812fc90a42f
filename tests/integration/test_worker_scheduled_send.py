"""A scheduled send on real `digest worker` processes over Redis and PostgreSQL: beat's
`send_due_issues` tick hands the due issue to the senders once, by the one send path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from digest.db import session_scope
from digest.models import Issue, utcnow
from tests.crash_issue import make_issue
from tests.integration.test_worker_collect_compose import (  # noqa: F401 (fixtures)
    broker,
    start_workers,
    store,
    succeeded,
    tick,
    worker_env,
)
from tests.processes import RedisServer, reap, wait_until


def status_of(url: str, issue_id: int) -> str:
    with session_scope(url) as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None
        return str(issue.status)


def test_beat_sends_a_scheduled_issue_once_its_time_has_come(
    store: str,  # noqa: F811 (the fixture)
    broker: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = worker_env(store, broker, tmp_path)
    issue_id = make_issue(store, recipients=7)
    with session_scope(store) as session:
        session.execute(
            update(Issue)
            .where(Issue.id == issue_id)
            .values(send_at=utcnow() - timedelta(seconds=1))
        )
    workers = start_workers(env, tmp_path)
    try:
        tick(broker, "send_due_issues")
        wait_until(lambda: status_of(store, issue_id) == "sent", 60, 0.2, "the scheduled send")
        tick(broker, "send_due_issues")  # the next tick finds nothing due
        wait_until(lambda: len(succeeded(workers[0], "send_due_issues")) == 2, 30)
    finally:
        reap(workers)
    assert succeeded(workers[0], "send_due_issues") == [f"[{issue_id}]", "[]"]
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 7
