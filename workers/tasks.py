"""Thin Celery tasks: ids in, ids out. Follow-up work is enqueued only after a commit."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Task
from sqlalchemy import select

from digest.config import get_settings
from digest.db import session_factory, session_scope
from digest.delivery.ledger import finish_issue_if_done, issue_progress
from digest.delivery.send import send_batch as send_one_batch
from digest.delivery.transports import Transport, make_transport
from digest.issues.compose import compose_issue
from digest.issues.lifecycle import get_issue
from digest.issues.schedule import claim_due_lists
from digest.models import Issue, MailingList
from digest.pipeline import approve_issue, start_sending
from digest.sources.collect import collect_source as collect_one
from digest.sources.due import due_source_ids
from workers.app import app

log = logging.getLogger(__name__)
_transport: dict[int, Transport] = {}


def transport() -> Transport:
    """One transport per worker process, so SMTP connections are reused across batches."""
    pid = os.getpid()
    if pid not in _transport:
        _transport[pid] = make_transport(get_settings())
    return _transport[pid]


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
    """Claim and send one batch, then chase the next; the last one closes the issue."""
    settings = get_settings()
    result = send_one_batch(session_factory(), issue_id, owner(), transport(), settings.batch_size)
    if result.claimed:
        send_batch.delay(issue_id)
    else:
        with session_scope() as session:
            done = finish_issue_if_done(session, issue_id)
            counts = issue_progress(session, issue_id)
            state = get_issue(session, issue_id).status
        if not done and state == "sending" and counts.get("pending", 0) + counts.get("sending", 0):
            # Retries wait for their back-off, or leases of a dead worker for expiry.
            send_batch.apply_async((issue_id,), countdown=min(settings.retry_base_seconds, 30) or 1)
    return {
        "claimed": result.claimed,
        "sent": result.sent,
        "retried": result.retried,
        "failed": result.failed,
    }


@app.task(name="workers.tasks.kick_sending_issues")
def kick_sending_issues() -> list[int]:
    """Safety net: an issue still sending gets a batch chaser, whatever tasks were lost."""
    with session_scope() as session:
        ids = list(session.scalars(select(Issue.id).where(Issue.status == "sending")))
    for issue_id in ids:
        send_batch.delay(issue_id)
    return ids
