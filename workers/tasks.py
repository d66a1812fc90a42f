# Celery ships no type hints: its decorators would make every task "untyped".
# mypy: disallow-untyped-decorators=False
"""Thin Celery tasks: ids in, ids out. Follow-up work is enqueued only after a commit."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from datetime import datetime
from typing import Any

from celery import Task
from celery.signals import worker_process_shutdown
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import select

from digest.config import get_settings
from digest.db import session_factory, session_scope
from digest.delivery.ledger import finish_issue_if_done, next_attempt_at
from digest.delivery.send import new_owner
from digest.delivery.send import send_batch as send_one_batch
from digest.delivery.transports import Transport, make_transport
from digest.issues.compose import compose_issue
from digest.issues.lifecycle import get_issue
from digest.issues.schedule import claim_due_lists
from digest.models import Issue, MailingList, utcnow
from digest.pipeline import approve_issue, start_sending
from digest.sources.collect import collect_source as collect_one
from digest.sources.due import due_source_ids
from digest.subscribers.confirmations import send_confirmations as send_confirmation_mails
from workers.app import app

log = logging.getLogger(__name__)
_transport: dict[int, Transport] = {}
MIN_CHASE_SECONDS = 0.2
MAX_CHASE_SECONDS = 30.0


def transport() -> Transport:
    """One transport per worker process, so SMTP connections are reused across batches."""
    pid = os.getpid()
    if pid not in _transport:
        _transport[pid] = make_transport(get_settings())
    return _transport[pid]


@worker_process_shutdown.connect
def close_transport(**_: Any) -> None:
    """A pool process that stops (SIGTERM's warm shutdown) says QUIT on its SMTP sessions."""
    kept = _transport.pop(os.getpid(), None)
    if kept is not None:
        try:
            kept.close()
        except Exception:  # the process is going anyway; a hung relay must not keep it
            log.warning("closing the transport failed", exc_info=True)


@app.task(name="workers.tasks.collect_due_sources")
def collect_due_sources() -> list[int]:
    with session_scope() as session:
        ids = due_source_ids(session)
    for source_id in ids:
        collect_source.delay(source_id)
    return ids


@app.task(name="workers.tasks.collect_source")
def collect_source(source_id: int) -> dict[str, Any]:
    with session_scope() as session:
        result = collect_one(session, source_id)
    return {"source_id": source_id, "new": result.new, "error": result.error}


@app.task(name="workers.tasks.send_confirmations")
def send_confirmations(request_ids: list[int] | None = None) -> dict[str, int]:
    """Sign-up confirmations: the ids a web request recorded, or (None, the periodic sweep)
    every request still open, so one whose enqueue was lost or whose send must be retried
    is not forgotten."""
    settings = get_settings()
    totals = send_confirmation_mails(session_factory(), transport(), settings, request_ids)
    return dict(totals)


@app.task(name="workers.tasks.compose_due_lists")
def compose_due_lists() -> list[int]:
    with session_scope() as session:
        due = claim_due_lists(session)
    for list_id in due:
        compose_list.delay(list_id)
    return due


@app.task(name="workers.tasks.compose_list")
def compose_list(list_id: int) -> int | None:
    """Compose a list's next issue; lists set to auto-approve go straight out."""
    with session_scope() as session:
        issue = compose_issue(session, list_id)
        if issue is None:
            return None
        issue_id = issue.id
        lst = session.get(MailingList, list_id)
        auto = bool(lst and lst.auto_approve)
        if auto:
            approve_issue(session, issue_id)
            start_sending(session, issue_id)
    if auto:
        send_issue.delay(issue_id)
    return issue_id


@app.task(name="workers.tasks.send_issue")
def send_issue(issue_id: int) -> int:
    """Open the issue to senders: plan (idempotent) and start `send_fanout` batch chasers."""
    with session_scope() as session:
        issue = get_issue(session, issue_id)
        if issue.status == "approved":
            start_sending(session, issue_id)
        elif issue.status != "sending":
            return 0
    fanout = get_settings().send_fanout
    for _ in range(fanout):
        send_batch.delay(issue_id)
    return fanout


@app.task(name="workers.tasks.send_batch", bind=True)
def send_batch(self: Task, issue_id: int) -> dict[str, int]:
    """Claim and send one batch, then chase the next; the last one closes the issue.
    With nothing claimable now but rows still open, come back when they can be."""
    settings = get_settings()
    owner = new_owner()
    result = send_one_batch(session_factory(), issue_id, owner, transport(), settings.batch_size)
    if result.claimed:
        chase(issue_id)
        return asdict(result)
    with session_scope() as session:
        done = finish_issue_if_done(session, issue_id)
        # Not done while sending: some rows are still open (retries waiting, or leased).
        sending = not done and get_issue(session, issue_id).status == "sending"
        due = next_attempt_at(session, issue_id) if sending else None
    if sending:
        chase(issue_id, chase_delay(due, settings.lease_seconds))
    return asdict(result)


def chase(issue_id: int, countdown: float | None = None) -> None:
    """Enqueue the next batch chaser. With the broker gone the chaser is lost, which is no
    failure of this batch (its results are in the ledger): a worker re-kicks sending issues
    when it reconnects, and beat does every minute."""
    try:
        send_batch.apply_async((issue_id,), countdown=countdown)
    except BrokerError as exc:
        log.warning("issue %s: chaser not enqueued (%s); the next kick restores it", issue_id, exc)


def chase_delay(due: datetime | None, lease_seconds: float) -> float:
    """Seconds until a chaser that found nothing should look again: when the earliest retry
    (or deferred row) is due; with only leased rows left, half a lease, so a dead worker's
    rows are reclaimed soon after their lease runs out. Never busy, never over 30 s."""
    wait = (due - utcnow()).total_seconds() if due is not None else lease_seconds / 2
    return min(max(wait, MIN_CHASE_SECONDS), MAX_CHASE_SECONDS)


@app.task(name="workers.tasks.kick_sending_issues")
def kick_sending_issues(chasers: int = 1) -> list[int]:
    """Safety net: each issue still sending gets `chasers` more batch chasers, whatever
    tasks were lost. Extra chasers are harmless: claims are leased, and a chaser with
    nothing left to claim ends once the issue is done or paused."""
    with session_scope() as session:
        ids = list(session.scalars(select(Issue.id).where(Issue.status == "sending")))
    for issue_id in ids:
        for _ in range(max(chasers, 1)):
            send_batch.delay(issue_id)
    return ids
