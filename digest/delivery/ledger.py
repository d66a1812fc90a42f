"""The delivery ledger: one row per recipient of an issue, from planned to sent or failed.

Every function takes a Session and leaves committing to the caller. Writes are set-based or
grouped so the ledger never caps the send rate. Works on SQLite and PostgreSQL; on PostgreSQL
claims use `FOR UPDATE SKIP LOCKED` so any number of workers share an issue without waiting.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.db import is_postgres
from digest.delivery.errors import LedgerError
from digest.delivery.recipient import Recipient
from digest.models import (
    Delivery,
    Event,
    Issue,
    Subscriber,
    Subscription,
    Suppression,
    utcnow,
)
from digest.subscribers.suppression import suppress

# skipped: not sent because, by the time its turn came, the subscription was no longer
# confirmed or the address was suppressed. Settled, like sent and failed.
STATUSES = ("pending", "sending", "sent", "failed", "skipped")
MAX_BACKOFF = timedelta(hours=6)
_CHUNK = 500  # ids per grouped statement: within SQLite's variable limit, cheap for PostgreSQL

_deliveries = cast(Table, Delivery.__table__)


def plan_deliveries(session: Session, issue_id: int, now: datetime | None = None) -> int:
    """Snapshot the issue's recipients: one INSERT ... SELECT of the list's confirmed,
    unsuppressed subscribers. Rerunning adds only those not planned yet. Returns rows added."""
    # The row lock serialises planners of one issue, so "nothing planned yet" stays true
    # until this insert commits.
    list_id = session.scalar(select(Issue.list_id).where(Issue.id == issue_id).with_for_update())
    if list_id is None:
        raise LedgerError(f"issue {issue_id} does not exist")
    first = not session.scalar(select(exists().where(Delivery.issue_id == issue_id)))
    rows = (
        select(
            literal(issue_id, Integer()),
            Subscription.subscriber_id,
            Subscription.id,
            Subscriber.email,
            Subscriber.name,
            literal("pending", String()),
            literal(0, Integer()),
            literal(now or utcnow(), DateTime()),
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id == list_id,
            Subscription.status == "confirmed",
            ~exists().where(Suppression.email == Subscriber.email),
        )
    )
    columns = [
        "issue_id",
        "subscriber_id",
        "subscription_id",
        "email",
        "name",
        "status",
        "attempts",
        "next_attempt_at",
    ]
    # Idempotence comes from the (issue_id, subscriber_id) unique key, not an anti-join on
    # deliveries: PostgreSQL may plan that as a scan of the table being filled (quadratic).
    # The first plan of an issue needs no conflict check: a plain insert skips PostgreSQL's
    # speculative insertion (measured 7.1-7.9 s against 8.0-8.7 s for 1M rows).
    stmt: Any
    if is_postgres(session):
        stmt = postgresql.insert(_deliveries).from_select(columns, rows)
        if not first:
            stmt = stmt.on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
    else:
        stmt = insert(_deliveries).from_select(columns, rows).prefix_with("OR IGNORE")
    # An INSERT's rowcount is only kept when asked for (SQLAlchemy 2).
    result = session.execute(stmt.execution_options(preserve_rowcount=True))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Claim:
    recipients: list[Recipient]  # leased, to be sent
    skipped: int = 0  # settled as 'skipped' on the way


def claim(
    session: Session,
    issue_id: int,
    owner: str,
    size: int,
    now: datetime | None = None,
    lease_seconds: int | None = None,
) -> Claim:
    """Lease up to `size` deliveries that are due: pending ones whose next attempt has come,
    then 'sending' ones whose lease expired (their worker died). Commit promptly after.

    Those whose subscription is no longer confirmed (unsubscribed, bounced, deleted since
    planning) or whose address is now suppressed are settled as 'skipped' instead: the claim
    reads both in its RETURNING clause, so the check costs no extra round trip."""
    now = now or utcnow()
    lease_until = now + timedelta(seconds=lease_seconds or get_settings().lease_seconds)
    due = and_(
        Delivery.status == "pending",
        or_(Delivery.next_attempt_at <= now, Delivery.next_attempt_at.is_(None)),
    )
    expired = and_(Delivery.status == "sending", Delivery.lease_until < now)
    # Spelled out: SQLAlchemy writes RETURNING columns unqualified on SQLite, which would
    # turn these correlations into `email = email` inside the subqueries.
    subscription_status = (
        select(Subscription.status)
        .where(Subscription.id == literal_column("deliveries.subscription_id"))
        .scalar_subquery()
    )
    suppressed = exists().where(Suppression.email == literal_column("deliveries.email"))
    claimed: list[Recipient] = []
    reasons: dict[str, list[int]] = {}
    for condition in (expired, due):
        wanted = size - len(claimed) - sum(map(len, reasons.values()))
        if wanted <= 0:
            break
        ids = select(Delivery.id).where(Delivery.issue_id == issue_id, condition).limit(wanted)
        if is_postgres(session):
            ids = ids.with_for_update(skip_locked=True)
        stmt = (
            sql_update(_deliveries)
            .where(_deliveries.c.id.in_(ids.scalar_subquery()))
            .values(
                status="sending",
                lease_owner=owner,
                lease_until=lease_until,
                attempts=_deliveries.c.attempts + 1,
            )
            .returning(
                _deliveries.c.id,
                _deliveries.c.subscription_id,
                _deliveries.c.email,
                _deliveries.c.name,
                subscription_status,
                suppressed,
            )
        )
        for delivery_id, subscription_id, email, name, status, blocked in session.execute(stmt):
            if blocked:
                reasons.setdefault("address suppressed", []).append(delivery_id)
            elif status != "confirmed":
                reasons.setdefault(f"subscription {status or 'deleted'}", []).append(delivery_id)
            else:
                claimed.append(Recipient(delivery_id, subscription_id, email, name))
    for reason, skipped in reasons.items():
        for group in _id_groups(session, skipped):
            session.execute(
                sql_update(_deliveries)
                .where(group, _deliveries.c.status == "sending")
                .values(status="skipped", last_error=reason, lease_owner=None, lease_until=None)
            )
    claimed.sort(key=lambda r: r.delivery_id)
    return Claim(claimed, sum(map(len, reasons.values())))


def _id_groups(session: Session, ids: Sequence[int]) -> Iterable[ColumnElement[bool]]:
    """`id IN ids` in as few statements as the database allows: one array parameter on
    PostgreSQL (nothing to expand, the same cached statement whatever the count), chunks
    within SQLite's variable limit."""
    if not ids:
        return
    if is_postgres(session):
        yield _deliveries.c.id == any_(bindparam("ids", list(ids), postgresql.ARRAY(BigInteger())))
        return
    for start in range(0, len(ids), _CHUNK):
        yield _deliveries.c.id.in_(ids[start : start + _CHUNK])


def mark_sent(session: Session, ids: Sequence[int], now: datetime | None = None) -> int:
    """Record the server's 250 for a group of deliveries, in a few statements."""
    now = now or utcnow()
    done = 0
    for group in _id_groups(session, ids):
        stmt = (
            sql_update(_deliveries)
            .where(group, _deliveries.c.status != "sent")
            .values(status="sent", sent_at=now, lease_owner=None, lease_until=None, last_error=None)
        )
        done += int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    return done


def mark_deferred(
    session: Session, ids: Sequence[int], until: datetime, reason: str = "deferred"
) -> int:
    """Put deliveries that were claimed but not tried (a rate limit ran out, the batch's time
    was up) back to pending until `until`, giving back the attempt their claim counted."""
    done = 0
    for group in _id_groups(session, ids):
        stmt = (
            sql_update(_deliveries)
            .where(group, _deliveries.c.status == "sending")
            .values(
                status="pending",
                next_attempt_at=until,
                attempts=func.greatest(_deliveries.c.attempts - 1, 0)
                if is_postgres(session)
                else func.max(_deliveries.c.attempts - 1, 0),
                lease_owner=None,
                lease_until=None,
                last_error=reason,
            )
        )
        done += int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    return done


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """Exponential back-off after the given number of attempts, capped."""
    return min(timedelta(seconds=base_seconds * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def mark_retry(
    session: Session,
    delivery_id: int,
    error: str,
    now: datetime | None = None,
    *,
    max_attempts: int | None = None,
    base_seconds: float | None = None,
) -> str:
    """A transient failure: back to pending with back-off, or failed once attempts run out
    (without suppression: the address did nothing wrong). Returns the new status.
    Only a row still 'sending' changes, so a late report never undoes another worker's 250."""
    settings = get_settings()
    max_attempts = max_attempts or settings.max_attempts
    base = settings.retry_base_seconds if base_seconds is None else base_seconds
    now = now or utcnow()
    row = session.execute(
        select(Delivery.attempts, Delivery.status).where(Delivery.id == delivery_id)
    ).one_or_none()
    if row is None:
        raise LedgerError(f"delivery {delivery_id} does not exist")
    if row.status != "sending":
        return str(row.status)
    values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
    if row.attempts >= max_attempts:
        values.update(status="failed", last_error=f"gave up after {row.attempts} attempts: {error}")
    else:
        values.update(
            status="pending", last_error=error, next_attempt_at=now + backoff(row.attempts, base)
        )
    session.execute(
        sql_update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.status == "sending")
        .values(**values)
    )
    return str(values["status"])


def mark_failed(
    session: Session, delivery_id: int, error: str, *, suppress_address: bool = True
) -> bool:
    """A permanent failure (5xx): failed for good, the address suppressed, an event recorded.
    Returns False when the row was already settled."""
    row = session.execute(
        sql_update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _deliveries.c.status.in_(("sending", "pending")))
        .values(status="failed", last_error=error, lease_owner=None, lease_until=None)
        .returning(_deliveries.c.email, _deliveries.c.subscriber_id, _deliveries.c.issue_id)
    ).one_or_none()
    if row is None:
        return False
    if suppress_address:
        suppress(session, row.email, "bounce", error)
    session.add(
        Event(
            kind="delivery_failed",
            subscriber_id=row.subscriber_id,
            issue_id=row.issue_id,
            detail={"delivery_id": delivery_id, "error": error[:1000]},
        )
    )
    return True


def empty_progress() -> dict[str, int]:
    return dict.fromkeys((*STATUSES, "total"), 0)


def issue_progress(session: Session, issue_id: int) -> dict[str, int]:
    """Deliveries of the issue by status, plus the total."""
    return progress_by_issue(session, [issue_id])[issue_id]


def progress_by_issue(session: Session, issue_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Deliveries by status, plus the total, for several issues in one grouped query."""
    found: dict[int, dict[str, int]] = defaultdict(empty_progress)
    if not issue_ids:
        return found
    rows = session.execute(
        select(Delivery.issue_id, Delivery.status, func.count())
        .where(Delivery.issue_id.in_(issue_ids))
        .group_by(Delivery.issue_id, Delivery.status)
    )
    for issue_id, status, count in rows:
        counts = found[int(issue_id)]
        counts[status] = int(count)
        counts["total"] += int(count)
    return found


def has_open_deliveries(session: Session, issue_id: int) -> bool:
    query = select(
        exists().where(Delivery.issue_id == issue_id, Delivery.status.in_(("pending", "sending")))
    )
    return bool(session.scalar(query))


def next_attempt_at(session: Session, issue_id: int) -> datetime | None:
    """When the earliest waiting retry of the issue becomes due (None: nothing waits)."""
    query = select(func.min(Delivery.next_attempt_at)).where(
        Delivery.issue_id == issue_id, Delivery.status == "pending"
    )
    return session.scalar(query)


def finish_issue_if_done(session: Session, issue_id: int, now: datetime | None = None) -> bool:
    """Mark the issue 'sent' once nothing is pending or sending; True when it is sent."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LedgerError(f"issue {issue_id} does not exist")
    if issue.status == "sent":
        return True
    if issue.status not in ("approved", "sending") or has_open_deliveries(session, issue_id):
        return False
    issue.status = "sent"
    issue.sent_at = now or utcnow()
    return True
