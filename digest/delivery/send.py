"""The send path: claim a batch, personalise and send it, write the ledger as results arrive.

Unit-of-work runners: they take a sessionmaker and commit themselves, because the promise
depends on when things commit. The claim commits before anything is sent (a crash then
leaves leased rows that another worker reclaims when the lease runs out); results are
committed in groups right after the server's 250 (every FLUSH_EVERY results or
FLUSH_SECONDS), so a crash duplicates only what was acknowledged but not yet written.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import get_settings
from digest.delivery.errors import DeliveryError, LedgerError
from digest.delivery.ledger import (
    claim,
    finish_issue_if_done,
    mark_deferred,
    mark_failed,
    mark_retry,
    mark_sent,
    next_attempt_at,
)
from digest.delivery.message import MessageTemplate
from digest.delivery.recipient import Recipient
from digest.delivery.transports import SendResult, Transport
from digest.models import Issue, utcnow
from digest.subscribers.tokens import Signer

log = logging.getLogger(__name__)

FLUSH_EVERY = 100
FLUSH_SECONDS = 0.2
SENDABLE = ("approved", "sending")


@dataclass(frozen=True, slots=True)
class BatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # claimed, but no longer confirmed or now suppressed
    deferred: int = 0  # claimed, not tried: back to pending without using an attempt

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def new_owner() -> str:
    """A lease owner name that tells operators which process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _LedgerWriter:
    """Groups results and commits them promptly; keeps the counts."""

    def __init__(self, sf: sessionmaker[Session], issue_id: int, errors_before: int) -> None:
        self.sf = sf
        self.issue_id = issue_id
        self.buffer: list[SendResult] = []
        self.flushed_at = time.monotonic()
        self.sent = self.retried = self.failed = self.deferred = 0
        # The issue's count of errors in a row may be above 0 (from an earlier batch too):
        # the next success must write it back to 0.
        self.errors_seen = errors_before > 0
        # Transport errors in a row (refused, dropped sessions, refused sender) before the
        # issue pauses itself: the relay is down or refuses us, and retrying everything would
        # burn attempts.
        self.pause_after = get_settings().pause_after_errors

    def add(self, chunk: Sequence[SendResult]) -> None:
        self.buffer.extend(chunk)
        due = time.monotonic() - self.flushed_at >= FLUSH_SECONDS
        if len(self.buffer) >= FLUSH_EVERY or (self.buffer and due):
            self.flush()

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if not self.buffer:
            return
        results, self.buffer = self.buffer, []
        now = utcnow()
        with self.sf.begin() as session:
            sent_ids = [r.delivery_id for r in results if r.outcome == "sent"]
            mark_sent(session, sent_ids, now)
            self.sent += len(sent_ids)
            deferred: dict[tuple[int, str], list[int]] = {}
            for r in results:
                if r.outcome == "deferred":
                    # Never before the window opens.
                    key = (math.ceil(r.retry_after), r.detail)
                    deferred.setdefault(key, []).append(r.delivery_id)
            for (after, detail), ids in deferred.items():
                self.deferred += mark_deferred(session, ids, now + timedelta(seconds=after), detail)
            for r in results:
                if r.outcome == "retry":
                    if mark_retry(session, r.delivery_id, r.detail, now) == "failed":
                        self.failed += 1
                    else:
                        self.retried += 1
                elif r.outcome == "failed":
                    mark_failed(session, r.delivery_id, r.detail, suppress_address=r.suppress)
                    self.failed += 1
            self._count_errors(session, results)

    def _count_errors(self, session: Session, results: list[SendResult]) -> None:
        """Track transport errors in a row on the issue; pause it when they pile up."""
        trailing = 0
        any_ok = False
        for r in results:
            if r.outcome == "deferred":
                continue  # not tried: says nothing about the relay
            if r.transport_error:
                trailing += 1
            else:
                any_ok, trailing = True, 0
        if not trailing and not (any_ok and self.errors_seen):
            return  # no error and no count to reset: the common case costs no statement
        self.errors_seen = trailing > 0
        issue = cast(Table, Issue.__table__)
        errors = trailing if any_ok else issue.c.consecutive_errors + trailing
        session.execute(
            update(issue).where(issue.c.id == self.issue_id).values(consecutive_errors=errors)
        )
        if not self.pause_after:
            return
        session.execute(
            update(issue)
            .where(
                issue.c.id == self.issue_id,
                issue.c.status == "sending",
                issue.c.consecutive_errors >= self.pause_after,
            )
            .values(status="paused")
        )


def _load_template(issue: Issue) -> MessageTemplate:
    if issue.message_template is None:
        raise DeliveryError(f"issue {issue.id} has no frozen message: prepare it before sending")
    return MessageTemplate.from_bytes(issue.message_template, Signer())


def send_batch(
    sf: sessionmaker[Session],
    issue_id: int,
    owner: str,
    transport: Transport,
    size: int | None = None,
) -> BatchResult:
    """Claim up to `size` due deliveries of the issue, send them, record the results.
    Sends nothing when the issue is not approved/sending (paused, cancelled, ...)."""
    with sf() as session:
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise LedgerError(f"issue {issue_id} does not exist")
        if issue.status not in SENDABLE:
            return BatchResult()
        template = _load_template(issue)
        errors_before = issue.consecutive_errors
        claimed = claim(session, issue_id, owner, size or get_settings().batch_size)
        session.commit()
    recipients, skipped = claimed.recipients, claimed.skipped
    if not recipients:
        return BatchResult(claimed=skipped, skipped=skipped)
    writer = _LedgerWriter(sf, issue_id, errors_before)
    try:
        _send_all(transport, template, recipients, writer)
    finally:
        writer.flush()
    return BatchResult(
        len(recipients) + skipped,
        writer.sent,
        writer.retried,
        writer.failed,
        skipped,
        writer.deferred,
    )


def _send_all(
    transport: Transport,
    template: MessageTemplate,
    recipients: list[Recipient],
    writer: _LedgerWriter,
) -> None:
    """Feed the transport's results to the writer. Should the transport itself stop with an
    error (a bug: per-recipient errors come back as results), the recipients it had not
    reported go back to pending with the reason instead of sitting in 'sending' until their
    lease runs out; an error of the ledger's own propagates (its rows keep their lease)."""
    reported: set[int] = set()
    chunks = transport.send(template.bounce_address, recipients, template.personalise)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except Exception as exc:
            log.exception("issue %s: the transport stopped mid-batch", template.issue_id)
            detail = f"batch stopped: {type(exc).__name__}: {exc}"[:1000]
            writer.add(
                [
                    SendResult(r.delivery_id, "retry", detail)
                    for r in recipients
                    if r.delivery_id not in reported
                ]
            )
            return
        reported.update(r.delivery_id for r in chunk)
        writer.add(chunk)


def start_issue(sf: sessionmaker[Session], issue_id: int) -> str:
    """Move an approved issue to 'sending'; returns the issue's status."""
    with sf.begin() as session:
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise LedgerError(f"issue {issue_id} does not exist")
        if issue.status == "approved":
            issue.status = "sending"
        return issue.status


def send_issue_inline(
    sf: sessionmaker[Session],
    issue_id: int,
    transport: Transport,
    on_progress: Callable[[BatchResult], None] | None = None,
    *,
    size: int | None = None,
    wait_for_retries: bool = False,
    max_wait_seconds: float = 3600.0,
) -> BatchResult:
    """Send batches in this process until nothing is claimable; the in-process path.
    With `wait_for_retries`, also sleep until waiting retries come due (up to a bound).
    `on_progress` gets the running totals after each batch."""
    owner = new_owner()
    start_issue(sf, issue_id)
    totals = BatchResult()
    deadline = time.monotonic() + max_wait_seconds
    while True:
        result = send_batch(sf, issue_id, owner, transport, size)
        totals += result
        if on_progress is not None and result.claimed:
            on_progress(totals)
        if result.claimed:
            continue
        if not wait_for_retries:
            break
        with sf() as session:
            status = session.scalar(select(Issue.status).where(Issue.id == issue_id))
            due = next_attempt_at(session, issue_id)
        if status not in SENDABLE or due is None:
            break
        pause = (due - utcnow()).total_seconds()
        if time.monotonic() + max(pause, 0) > deadline:
            break
        time.sleep(min(max(pause, 0.05), 5.0))
    with sf.begin() as session:
        finish_issue_if_done(session, issue_id)
    return totals
