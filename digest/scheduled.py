"""A scheduled issue from its fire to its issue: claimed, its list's sources collected, then
composed with the fire time as the cut-off; tried again with back-off until its issue exists.

States: pending (recorded with the list's checkpoint, not tried yet) -> collecting (claimed:
an attempt holds its lease token) -> composed (its issue exists) | empty (nothing new: no
issue, none missing) | failed (the attempt's error kept; claimed again at next_attempt_at) |
superseded (a later fire of the list took over before it settled). An attempt that does not
finish within its lease (its task lost, its worker killed) is claimed again by the next tick.

Each change is a conditional UPDATE fenced by the claim's token: a task run twice, two beat
ticks, or an attempt whose lease ran out and was taken over never settles a record twice nor
makes a second issue. The compose step's first statement locks the record (its row on
PostgreSQL, the database on SQLite) until the issue is committed with it.

`collect_step` and `compose_step` own their transactions (like `collect_sources`): workers
run them as two tasks (collect, then compose, enqueued after the first commits), `digest run`
and the demo one after the other in-process (`run_scheduled`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.errors import DigestError
from digest.issues.compose import compose_issue
from digest.issues.schedule import OPEN_STATES, due_sends
from digest.models import (
    Issue,
    IssueStatus,
    ListSource,
    MailingList,
    ScheduledIssue,
    ScheduledState,
    Source,
    utcnow,
)
from digest.pipeline import Handover, approve_if_auto, start_sending
from digest.sources.collect import CollectResult, collect_sources, describe

log = logging.getLogger(__name__)

LOST = "its last attempt did not finish in time (the task was lost or its worker stopped)"
NOT_TRIED = "not tried yet: is beat running (`digest beat`, or `digest run` without workers)?"
MAX_RETRY = timedelta(hours=1)
ERROR_MAX = 1000


@dataclass(frozen=True, slots=True)
class Claim:
    """An attempt at a scheduled issue: the record's id and the attempt's lease token."""

    id: int
    token: str


@dataclass(frozen=True, slots=True)
class Outcome:
    # collected (go on: compose) | composed | empty | failed | taken (another attempt has it)
    state: str
    issue_id: int | None = None
    error: str | None = None
    collected: tuple[CollectResult, ...] = ()
    approved: bool = False  # the list auto-approves: the issue is planned, ready to send


@dataclass(frozen=True, slots=True)
class OverdueRow:
    id: int  # the scheduled issue's; for a late send, the issue's
    list_slug: str
    list_name: str
    fire_at: datetime
    state: ScheduledState | str  # "send": an approved issue's scheduled send, not started
    attempts: int
    error: str
    next_attempt_at: datetime | None
    issue_id: int | None = None  # a late send's issue


LATE_SEND = (
    "scheduled to be sent then and still approved: is the due check running (`digest beat`, "
    "or `digest run` from cron)?"
)


def _claimable(now: datetime) -> ColumnElement[bool]:
    s = ScheduledIssue
    return or_(
        s.state == ScheduledState.PENDING,
        and_(
            s.state == ScheduledState.FAILED,
            or_(s.next_attempt_at.is_(None), s.next_attempt_at <= now),
        ),
        and_(s.state == ScheduledState.COLLECTING, s.lease_until < now),
    )


def _held(claim: Claim) -> ColumnElement[bool]:
    s = ScheduledIssue
    return and_(
        s.id == claim.id, s.lease_token == claim.token, s.state == ScheduledState.COLLECTING
    )


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def claim_scheduled(
    session: Session, now: datetime, lease_seconds: float, ids: list[int] | None = None
) -> list[Claim]:
    """Claim the scheduled issues to try now (pending, failed and due again, or whose last
    attempt's lease ran out), oldest fire first; each claim is a new lease token."""
    query = (
        select(ScheduledIssue.id, ScheduledIssue.state)
        .where(_claimable(now))
        .order_by(ScheduledIssue.fire_at, ScheduledIssue.id)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        query = query.where(ScheduledIssue.id.in_(ids))
    claims: list[Claim] = []
    for record_id, state in session.execute(query).all():
        token = uuid.uuid4().hex
        values: dict[str, Any] = {
            "state": ScheduledState.COLLECTING,
            "attempts": ScheduledIssue.attempts + 1,
            "lease_token": token,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "next_attempt_at": None,
        }
        if state == ScheduledState.COLLECTING:
            values["last_error"] = LOST
        stmt = (
            update(ScheduledIssue)
            .where(ScheduledIssue.id == record_id, _claimable(now))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(session.execute(stmt)) == 1:
            claims.append(Claim(record_id, token))
    return claims


def sources_to_collect(session: Session, claim: Claim) -> list[int] | None:
    """The sources of the claimed issue's list to bring up to date (manual ones have nothing
    to fetch); None when the claim is no longer held."""
    list_id = session.scalar(select(ScheduledIssue.list_id).where(_held(claim)))
    if list_id is None:
        return None
    query = (
        select(ListSource.source_id)
        .join(Source, Source.id == ListSource.source_id)
        .where(ListSource.list_id == list_id, Source.kind != "manual", Source.enabled.is_(True))
        .order_by(ListSource.source_id)
    )
    return list(session.scalars(query))


def compose_scheduled(session: Session, claim: Claim, now: datetime | None = None) -> Outcome:
    """Compose the claimed issue up to its fire time and settle the record, in the caller's
    transaction. Raises what composing raises (a draft still open ...): the caller rolls
    back and records it with `fail_scheduled`."""
    now = now or utcnow()
    # A write first: it locks the record, so a second attempt waits and then finds it settled.
    lock = (
        update(ScheduledIssue)
        .where(_held(claim))
        .values(lease_until=ScheduledIssue.lease_until)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(session.execute(lock)) != 1:
        return Outcome("taken")
    record = session.get_one(ScheduledIssue, claim.id, populate_existing=True)
    issue = compose_issue(session, record.list_id, now, cutoff=record.fire_at)
    record.state = ScheduledState.EMPTY if issue is None else ScheduledState.COMPOSED
    record.issue_id = issue.id if issue is not None else None
    record.settled_at, record.lease_token, record.last_error = now, None, None
    session.flush()
    return Outcome(record.state, record.issue_id)


def retry_delay(attempts: int, base_seconds: float) -> timedelta:
    """Twice as long after each failed attempt, at most an hour."""
    seconds = base_seconds * 2 ** min(max(attempts - 1, 0), 20)
    return min(timedelta(seconds=seconds), MAX_RETRY)


def fail_scheduled(
    session: Session, claim: Claim, error: str, now: datetime, retry_seconds: float
) -> bool:
    """Record the attempt's error and when to try again; False when the claim is no longer
    held (another attempt took over: its own outcome stands)."""
    attempts = session.scalar(select(ScheduledIssue.attempts).where(_held(claim)))
    if attempts is None:
        return False
    stmt = (
        update(ScheduledIssue)
        .where(_held(claim))
        .values(
            state=ScheduledState.FAILED,
            last_error=error[:ERROR_MAX],
            next_attempt_at=now + retry_delay(attempts, retry_seconds),
            lease_token=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(stmt)) == 1


def _fail(factory: sessionmaker[Session], claim: Claim, error: str, settings: Settings) -> Outcome:
    with factory.begin() as session:
        held = fail_scheduled(session, claim, error, utcnow(), settings.schedule_retry_seconds)
    log.warning("scheduled issue %s: %s", claim.id, error)
    return Outcome("failed" if held else "taken", error=error)


def collect_step(factory: sessionmaker[Session], claim: Claim, settings: Settings) -> Outcome:
    """Bring the claimed issue's list's sources up to date (each source's failure is its own,
    kept on the source); "collected" when composing should follow."""
    with factory() as session:
        source_ids = sources_to_collect(session, claim)
    if source_ids is None:
        return Outcome("taken")
    try:
        collected = collect_sources(factory, source_ids, settings=settings)
    except Exception as exc:  # e.g. the database went away: the attempt fails as a whole
        log.exception("scheduled issue %s: collecting failed", claim.id)
        return _fail(factory, claim, f"collecting its sources failed: {describe(exc)}", settings)
    return Outcome("collected", collected=tuple(collected))


def compose_step(factory: sessionmaker[Session], claim: Claim, settings: Settings) -> Outcome:
    """Compose the claimed issue and settle it, or record why not; an issue of a list that
    auto-approves is then approved and planned (a failure there leaves the draft to its
    editor: the issue exists, so the scheduled issue stays settled)."""
    try:
        with factory.begin() as session:
            outcome = compose_scheduled(session, claim)
    except Exception as exc:
        if not isinstance(exc, DigestError):
            log.exception("scheduled issue %s: composing failed", claim.id)
        error = str(exc) if isinstance(exc, DigestError) else describe(exc)
        return _fail(factory, claim, f"composing failed: {error}", settings)
    if outcome.state != "composed" or outcome.issue_id is None:
        return outcome
    try:
        with factory.begin() as session:
            approved = approve_if_auto(session, outcome.issue_id, settings)
    except Exception:
        log.exception("issue %s: auto-approval failed; the draft waits", outcome.issue_id)
        approved = False
    return Outcome("composed", outcome.issue_id, approved=approved)


def run_scheduled(factory: sessionmaker[Session], claim: Claim, settings: Settings) -> Outcome:
    """Both steps in this process (`digest run`, the demo)."""
    collected = collect_step(factory, claim, settings)
    if collected.state != "collected":
        return collected
    composed = compose_step(factory, claim, settings)
    return Outcome(
        composed.state,
        composed.issue_id,
        composed.error,
        collected.collected,
        composed.approved,
    )


def _why(record: ScheduledIssue, now: datetime) -> str:
    if record.state == ScheduledState.PENDING:
        return NOT_TRIED
    if (
        record.state == ScheduledState.COLLECTING
        and record.lease_until
        and record.lease_until < now
    ):
        return LOST
    if record.state == ScheduledState.COLLECTING:
        previous = f"; before: {record.last_error}" if record.last_error else ""
        return f"attempt {record.attempts} in progress{previous}"
    return record.last_error or "failed"


def overdue_sends(session: Session, now: datetime, minutes: int) -> list[OverdueRow]:
    """Approved issues whose scheduled send is `minutes` or more past and that are still
    approved (the due check has not run), oldest first."""
    rows = session.execute(
        select(Issue.id, Issue.send_at, MailingList.slug, MailingList.name)
        .join(MailingList, MailingList.id == Issue.list_id)
        .where(
            Issue.status == IssueStatus.APPROVED,
            Issue.send_at <= now - timedelta(minutes=minutes),
        )
        .order_by(Issue.send_at, Issue.id)
    )
    return [
        OverdueRow(issue_id, slug, name, send_at, "send", 0, LATE_SEND, None, issue_id)
        for issue_id, send_at, slug, name in rows
        if send_at is not None  # (the WHERE says so; for the type checker)
    ]


def overdue_scheduled(session: Session, now: datetime, minutes: int) -> list[OverdueRow]:
    """Scheduled issues due for `minutes` or more and still without their issue, oldest
    first, each with what is wrong in words."""
    rows = session.execute(
        select(ScheduledIssue, MailingList.slug, MailingList.name)
        .join(MailingList, MailingList.id == ScheduledIssue.list_id)
        .where(
            ScheduledIssue.state.in_(OPEN_STATES),
            ScheduledIssue.created_at <= now - timedelta(minutes=minutes),
        )
        .order_by(ScheduledIssue.fire_at, ScheduledIssue.id)
    )
    return [
        OverdueRow(
            id=record.id,
            list_slug=slug,
            list_name=name,
            fire_at=record.fire_at,
            state=record.state,
            attempts=record.attempts,
            error=_why(record, now),
            next_attempt_at=record.next_attempt_at,
        )
        for record, slug, name in rows
    ]


def start_due_sends(session: Session, now: datetime | None = None) -> list[Handover]:
    """Hand each approved issue whose scheduled send has come to the senders (planned by
    `digest.pipeline.start_sending`, the path every send takes), in the caller's
    transaction: the caller commits, then has each sent (`digest run` in-process, beat on
    the workers)."""
    return [start_sending(session, issue_id) for issue_id in due_sends(session, now or utcnow())]
