"""The delivery ledger: one row per recipient of an issue, from planned to sent or failed.

Every function takes a Session and leaves committing to the caller. Writes are set-based or
grouped so the ledger never caps the send rate. Works on SQLite and PostgreSQL; on PostgreSQL
claims use `FOR UPDATE SKIP LOCKED` so any number of workers share an issue without waiting.

Leases are fenced: a claim writes a lease token (unique per claim) into `lease_owner`, and
every write that settles or releases a claimed row matches that token and status 'sending'.
A worker whose lease ran out and was taken over changes nothing: its writes count as refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from digest.db import is_postgres
from digest.delivery.audience import due_column, edition_column, reader_zones
from digest.delivery.errors import LedgerError
from digest.delivery.recipient import Recipient
from digest.models import (
    Delivery,
    DeliveryStatus,
    Event,
    EventKind,
    FeedbackVia,
    Issue,
    IssueStatus,
    IssueVariant,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    Verdict,
    utcnow,
)
from digest.subscribers.classify import status_of
from digest.subscribers.feedback import DeliveryRef, FeedbackPolicy, record_event

# Not settled yet: waiting to be claimed, or claimed.
OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
MAX_BACKOFF = timedelta(hours=6)
_CHUNK = 500  # ids per grouped statement: within SQLite's variable limit, cheap for PostgreSQL
_MAX_DOUBLINGS = 64  # a back-off base too small to reach the cap in 64 doublings is ~0 anyway
_RETRY_CHUNK = 250  # rows per retry statement: each carries its own error

_deliveries = cast(Table, Delivery.__table__)
# Why a reader planned as skipped gets no mail: their variant of the issue holds no item.
NOTHING_FOR_THEM = "nothing in this issue for their topics"


def plan_deliveries(session: Session, issue_id: int, now: datetime | None = None) -> int:
    """Snapshot the issue's recipients: one INSERT ... SELECT of the list's confirmed,
    unsuppressed subscribers. Rerunning adds only those not planned yet. Returns rows added.

    Each row names the variant its copy comes from (the reader's edition and topic set,
    else that edition's full variant, else none: the issue's own message) and when it is
    due (`due_at`, also its first `next_attempt_at`, so the claim takes it no sooner). A
    reader whose variant holds no item is planned as skipped, with the reason: recorded,
    not sent, not a failure."""
    # The row lock serialises planners of one issue, so "nothing planned yet" stays true
    # until this insert commits.
    list_id = session.scalar(select(Issue.list_id).where(Issue.id == issue_id).with_for_update())
    if list_id is None:
        raise LedgerError(f"issue {issue_id} does not exist")
    lst = session.get(MailingList, list_id)
    assert lst is not None  # the issue's foreign key
    now = now or utcnow()
    first = not session.scalar(select(exists().where(Delivery.issue_id == issue_id)))
    edition = edition_column(lst)
    exact = aliased(IssueVariant)
    whole = aliased(IssueVariant)
    variant_id = func.coalesce(exact.id, whole.id)
    empty = or_(
        and_(exact.id.is_not(None), exact.html.is_(None)),
        and_(exact.id.is_(None), whole.id.is_not(None), whole.html.is_(None)),
    )
    zones = reader_zones(session, lst) if lst.send_local_time else []
    due = due_column(lst, zones, now)
    rows = (
        select(
            literal(issue_id, Integer()),
            Subscription.subscriber_id,
            Subscription.id,
            Subscriber.email,
            Subscriber.name,
            case(
                (empty, literal(DeliveryStatus.SKIPPED.value, String())),
                else_=literal(DeliveryStatus.PENDING.value, String()),
            ),
            literal(0, Integer()),
            due,
            variant_id,
            due,
            case((empty, literal(NOTHING_FOR_THEM, Text())), else_=null()),
        )
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .outerjoin(
            exact,
            and_(
                exact.issue_id == issue_id,
                exact.language == edition,
                exact.topic_ids == Subscription.topic_ids,
            ),
        )
        .outerjoin(
            whole,
            and_(whole.issue_id == issue_id, whole.language == edition, whole.topic_ids == ""),
        )
        .where(
            Subscription.list_id == list_id,
            Subscription.status == SubscriptionStatus.CONFIRMED,
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
        "variant_id",
        "due_at",
        "last_error",
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
    expired: int = 0  # of those claimed, rows taken over because their lease had run out


def _lease_until(now: datetime, lease_seconds: float) -> datetime:
    return now + timedelta(seconds=lease_seconds)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


# The statements of the send path are built once per database kind, with their values as
# parameters: a statement built per call costs its construction and its cache key each time
# (measured: about as much worker CPU as the round trip). `Db` is a Session, or a Connection
# the caller holds (send.py writes results on one it keeps for the batch).
Db = Session | Connection
# The fence: the row is still leased by this claim (:lease). Every settling write matches it.
_HELD = and_(
    _deliveries.c.status == DeliveryStatus.SENDING,
    _deliveries.c.lease_owner == bindparam("lease", type_=String()),
)


def _postgres(db: Db) -> bool:
    bind = db.get_bind() if isinstance(db, Session) else db
    return bind.dialect.name == "postgresql"


def _ids_match(postgres: bool) -> ColumnElement[bool]:
    """`id IN :ids`. On PostgreSQL one text parameter cast to an array (see _ids_value): the
    same statement whatever the count, and no per-element dumping in Python."""
    if postgres:
        ids = sql_cast(bindparam("ids", type_=Text()), postgresql.ARRAY(BigInteger()))
        return _deliveries.c.id == any_(ids)
    return _deliveries.c.id.in_(bindparam("ids", expanding=True))


def _ids_value(postgres: bool, ids: Sequence[int]) -> Any:
    """The :ids parameter: a PostgreSQL array literal ("{1,2,3}", psycopg would dump a list
    element by element in Python, ~7 us a row), a list on SQLite."""
    if postgres:
        return "{" + ",".join(map(str, map(int, ids))) + "}"
    return list(ids)


def _id_chunks(postgres: bool, ids: Sequence[int]) -> Iterable[Sequence[int]]:
    """`ids` in as few statements as the database allows: one on PostgreSQL, chunks within
    SQLite's variable limit."""
    if not ids:
        return
    if postgres:
        yield ids
        return
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


@cache
def _claim_statement(postgres: bool, expired: bool) -> Any:
    """UPDATE ... RETURNING over the ids of up to :wanted rows that are due (`expired`: whose
    lease ran out). Parameters: issue, now, wanted, lease, leased_until."""
    d = _deliveries.c
    now = bindparam("now", type_=DateTime())
    if expired:
        condition = and_(d.status == DeliveryStatus.SENDING, d.lease_until < now)
    else:
        condition = and_(d.status == DeliveryStatus.PENDING, d.next_attempt_at <= now)
    ids = (
        select(d.id)
        .where(d.issue_id == bindparam("issue", type_=BigInteger()), condition)
        .limit(bindparam("wanted", type_=Integer()))
    )
    if not expired:
        # One range of the claim index, read in its order up to the limit: without the
        # ORDER BY PostgreSQL may pick a sequential scan that reads every row sent so far
        # (49 ms a claim half way through 1M rows); with a second range (`OR next_attempt_at
        # IS NULL`, gone now that the column is NOT NULL) it sorted every pending row on disk
        # (368 ms). Measured 2-7 ms, by benchmarks/send.py --recipients 1000000.
        ids = ids.order_by(d.next_attempt_at)
    match: ColumnElement[bool]
    if postgres:
        # One array of the locked ids, then the rows by primary key: `id IN (subquery)` is
        # often planned as a hash join over a sequential scan of the whole table.
        locked = ids.with_for_update(skip_locked=True).subquery()
        array = select(func.array_agg(locked.c.id)).scalar_subquery()
        match = d.id == any_(sql_cast(array, postgresql.ARRAY(BigInteger())))
    else:
        match = d.id.in_(ids.scalar_subquery())
    # Spelled out: SQLAlchemy writes RETURNING columns unqualified on SQLite, which would
    # turn these correlations into `email = email` inside the subqueries. The status comes
    # back as plain text: compared once, no enum made per row.
    subscriptions = cast(Table, Subscription.__table__)
    suppressions = cast(Table, Suppression.__table__)
    subscription_status = type_coerce(
        select(subscriptions.c.status)
        .where(subscriptions.c.id == literal_column("deliveries.subscription_id"))
        .scalar_subquery(),
        String(),
    )
    suppressed = exists().where(suppressions.c.email == literal_column("deliveries.email"))
    return (
        sql_update(_deliveries)
        .where(match)
        .values(
            status=DeliveryStatus.SENDING,
            lease_owner=bindparam("lease", type_=String()),
            lease_until=bindparam("leased_until", type_=DateTime()),
            attempts=d.attempts + 1,
        )
        .returning(
            d.id,
            d.subscription_id,
            d.email,
            d.name,
            d.variant_id,
            subscription_status,
            suppressed,
        )
    )


@cache
def _skip_statement(postgres: bool) -> Any:
    return (
        sql_update(_deliveries)
        .where(_ids_match(postgres), _HELD)
        .values(
            status=DeliveryStatus.SKIPPED,
            last_error=bindparam("reason", type_=Text()),
            lease_owner=None,
            lease_until=None,
        )
    )


def claim(
    session: Session,
    issue_id: int,
    lease: str,
    size: int,
    now: datetime | None = None,
    *,
    lease_seconds: float,
) -> Claim:
    """Lease up to `size` deliveries that are due: pending ones whose next attempt has come,
    then 'sending' ones whose lease expired (their worker died). Commit promptly after.

    `lease` is written into each row's `lease_owner` and fences every later write: make it
    unique per claim (send.lease_token), so even an older batch of the same process cannot
    write over a newer claim of a row.

    Those whose subscription is no longer confirmed (unsubscribed, bounced, deleted since
    planning) or whose address is now suppressed are settled as 'skipped' instead: the claim
    reads both in its RETURNING clause, so the check costs no extra round trip."""
    now = now or utcnow()
    postgres = _postgres(session)
    params = {
        "issue": issue_id,
        "now": now,
        "lease": lease,
        "leased_until": _lease_until(now, lease_seconds),
    }
    confirmed = SubscriptionStatus.CONFIRMED.value
    claimed: list[Recipient] = []
    reasons: dict[str, list[int]] = {}
    taken_over = skipped = 0
    for expired in (True, False):
        wanted = size - len(claimed) - skipped
        if wanted <= 0:
            break
        stmt = _claim_statement(postgres, expired)
        rows = sorted(session.execute(stmt, {**params, "wanted": wanted}), key=itemgetter(0))
        if expired:
            taken_over = len(rows)
        for delivery_id, subscription_id, email, name, variant, status, blocked in rows:
            if blocked:
                reasons.setdefault("address suppressed", []).append(delivery_id)
            elif status != confirmed:
                reasons.setdefault(f"subscription {status or 'deleted'}", []).append(delivery_id)
            else:
                claimed.append(Recipient(delivery_id, subscription_id, email, name, variant))
                continue
            skipped += 1
    for reason, ids in reasons.items():
        for chunk in _id_chunks(postgres, ids):
            values = {"ids": _ids_value(postgres, chunk), "lease": lease, "reason": reason}
            session.execute(_skip_statement(postgres), values)
    if taken_over:
        claimed.sort(key=attrgetter("delivery_id"))  # two runs, each in order
    return Claim(claimed, skipped, taken_over)


@cache
def _renew_statement() -> Any:
    return (
        sql_update(_deliveries)
        .where(_deliveries.c.issue_id == bindparam("issue", type_=BigInteger()), _HELD)
        .values(lease_until=bindparam("until", type_=DateTime()))
    )


def renew_lease(
    db: Db,
    issue_id: int,
    lease: str,
    now: datetime | None = None,
    *,
    lease_seconds: float,
) -> int:
    """Extend the lease of the rows this claim still holds (sent rows no longer carry it), so
    a batch that is slow, not dead, keeps them. One statement whatever the batch's size.
    Returns how many rows the claim still holds: fewer than it has not settled yet means some
    ran out and were taken over by another worker."""
    until = _lease_until(now or utcnow(), lease_seconds)
    values = {"issue": issue_id, "lease": lease, "until": until}
    return _rowcount(db.execute(_renew_statement(), values))


@cache
def _mark_sent_statement(postgres: bool) -> Any:
    return (
        sql_update(_deliveries)
        .where(_ids_match(postgres), _HELD)
        .values(
            status=DeliveryStatus.SENT,
            sent_at=bindparam("at", type_=DateTime()),
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
    )


def mark_sent(db: Db, ids: Sequence[int], now: datetime | None = None, *, lease: str) -> int:
    """Record the server's 250 for a group of deliveries, in a few statements (one on
    PostgreSQL). Returns the rows written: those `lease` no longer holds are left to the
    claim that holds them."""
    now = now or utcnow()
    postgres = _postgres(db)
    stmt = _mark_sent_statement(postgres)
    done = 0
    for chunk in _id_chunks(postgres, ids):
        values = {"ids": _ids_value(postgres, chunk), "lease": lease, "at": now}
        done += _rowcount(db.execute(stmt, values))
    return done


@cache
def _mark_deferred_statement(postgres: bool) -> Any:
    attempts = _deliveries.c.attempts - 1
    return (
        sql_update(_deliveries)
        .where(_ids_match(postgres), _HELD)
        .values(
            status=DeliveryStatus.PENDING,
            next_attempt_at=bindparam("until", type_=DateTime()),
            attempts=func.greatest(attempts, 0) if postgres else func.max(attempts, 0),
            lease_owner=None,
            lease_until=None,
            last_error=bindparam("reason", type_=Text()),
        )
    )


def mark_deferred(
    db: Db, ids: Sequence[int], until: datetime, reason: str = "deferred", *, lease: str
) -> int:
    """Put deliveries that were claimed but not tried (a rate limit ran out, the batch's time
    was up) back to pending until `until`, giving back the attempt their claim counted.
    Returns the rows released (only those `lease` still holds)."""
    postgres = _postgres(db)
    stmt = _mark_deferred_statement(postgres)
    done = 0
    for chunk in _id_chunks(postgres, ids):
        values = {"ids": _ids_value(postgres, chunk), "lease": lease, "until": until}
        done += _rowcount(db.execute(stmt, {**values, "reason": reason}))
    return done


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """Exponential back-off after the given number of attempts, capped."""
    return min(timedelta(seconds=base_seconds * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _next_attempt(now: datetime, max_attempts: int, base: float) -> ColumnElement[Any]:
    """`now + backoff(attempts)` per row, in SQL: a CASE over the attempt counts before the
    cap (the back-off doubles, so there are a few dozen at most), the cap after."""
    attempts = _deliveries.c.attempts
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    n = 1
    while n < min(max_attempts, _MAX_DOUBLINGS) and base > 0 and backoff(n, base) < MAX_BACKOFF:
        whens.append((attempts <= n, literal(now + backoff(n, base), DateTime())))
        n += 1
    last = literal(now + backoff(n, base), DateTime())
    return case(*whens, else_=last) if whens else last


def mark_retry(
    session: Session,
    errors: Mapping[int, str],
    now: datetime | None = None,
    *,
    lease: str,
    max_attempts: int,
    base_seconds: float,
) -> dict[int, str]:
    """Transient failures (delivery id -> error): back to pending with back-off, or failed
    once attempts run out (without suppression: the address did nothing wrong). A few
    statements per group, the back-off computed per row in SQL. Only rows `lease` still holds
    change, so a late report never undoes another worker's 250 or claim.
    Returns the new status of each row written."""
    if not errors:
        return {}
    now = now or utcnow()
    attempts = _deliveries.c.attempts
    spent = attempts >= max_attempts
    gave_up = literal("gave up after ") + sql_cast(attempts, String()) + literal(" attempts: ")
    written: dict[int, str] = {}
    ids = list(errors)
    postgres = _postgres(session)
    # The error is per row (servers name the recipient in their replies): a CASE on the id
    # carries it, two parameters a row, so chunks keep within both databases' limits.
    for start in range(0, len(ids), _RETRY_CHUNK):
        chunk = ids[start : start + _RETRY_CHUNK]
        error = case({i: errors[i] for i in chunk}, value=_deliveries.c.id)
        stmt = (
            sql_update(_deliveries)
            .where(_ids_match(postgres), _HELD)
            .values(
                status=case((spent, DeliveryStatus.FAILED), else_=DeliveryStatus.PENDING),
                last_error=case((spent, gave_up), else_="") + error,
                next_attempt_at=case(
                    (spent, _deliveries.c.next_attempt_at),
                    else_=_next_attempt(now, max_attempts, base_seconds),
                ),
                lease_owner=None,
                lease_until=None,
            )
            .returning(_deliveries.c.id, _deliveries.c.status)
        )
        values = {"ids": _ids_value(postgres, chunk), "lease": lease}
        written.update((int(i), str(status)) for i, status in session.execute(stmt, values))
    return written


def mark_failed(
    session: Session,
    delivery_id: int,
    error: str,
    *,
    lease: str,
    verdict: Verdict = Verdict.HARD,
    policy: FeedbackPolicy | None = None,
) -> bool:
    """A permanent failure (5xx): failed for good, an event recorded, and the verdict handed
    to the policy (digest.subscribers.feedback: a hard bounce suppresses, a soft one after a
    few, a block never). Returns False, and records nothing, when `lease` no longer holds
    the row (settled already, or taken over by another worker)."""
    row = session.execute(
        sql_update(_deliveries)
        .where(_deliveries.c.id == delivery_id, _HELD)
        .values(status=DeliveryStatus.FAILED, last_error=error, lease_owner=None, lease_until=None)
        .returning(
            _deliveries.c.email,
            _deliveries.c.subscriber_id,
            _deliveries.c.subscription_id,
            _deliveries.c.issue_id,
        ),
        {"lease": lease},
    ).one_or_none()
    if row is None:
        return False
    delivery = DeliveryRef(
        delivery_id, row.issue_id, row.subscriber_id, row.subscription_id, row.email
    )
    record_event(
        session,
        verdict,
        via=FeedbackVia.RELAY,
        policy=policy or FeedbackPolicy(),
        delivery=delivery,
        status=status_of(text=error),
        detail=error,
    )
    session.add(
        Event(
            kind=EventKind.DELIVERY_FAILED,
            subscriber_id=row.subscriber_id,
            issue_id=row.issue_id,
            detail={"delivery_id": delivery_id, "error": error[:1000]},
        )
    )
    return True


@dataclass(frozen=True, slots=True)
class Progress:
    """An issue's deliveries by status: the one count the CLI, the editor, the API and the
    demo show (a field per DeliveryStatus)."""

    pending: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # unsubscribed or suppressed after planning

    @property
    def total(self) -> int:
        return self.pending + self.sending + self.sent + self.failed + self.skipped

    @property
    def settled(self) -> int:
        """Rows nothing more happens to: sent, failed or skipped."""
        return self.sent + self.failed + self.skipped


def issue_progress(session: Session, issue_id: int) -> Progress:
    """Deliveries of the issue by status."""
    return progress_by_issue(session, [issue_id])[issue_id]


def progress_by_issue(session: Session, issue_ids: Sequence[int]) -> dict[int, Progress]:
    """Deliveries by status for several issues, in one grouped query; an issue with none
    planned has a Progress of zeros."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if issue_ids:
        rows = session.execute(
            select(Delivery.issue_id, Delivery.status, func.count())
            .where(Delivery.issue_id.in_(issue_ids))
            .group_by(Delivery.issue_id, Delivery.status)
        )
        for issue_id, status, count in rows:
            counts[int(issue_id)][DeliveryStatus(status).value] = int(count)
    found: dict[int, Progress] = defaultdict(Progress)
    found.update((issue_id, Progress(**by_status)) for issue_id, by_status in counts.items())
    return found


@dataclass(frozen=True, slots=True)
class Wave:
    """Deliveries that become due together (a local hour somewhere), not due yet."""

    due_at: datetime  # naive UTC
    deliveries: int


def waves_to_come(session: Session, issue_id: int, now: datetime | None = None) -> list[Wave]:
    """The issue's pending deliveries planned for later, by the moment they become due."""
    rows = session.execute(
        select(Delivery.due_at, func.count())
        .where(
            Delivery.issue_id == issue_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at > (now or utcnow()),
        )
        .group_by(Delivery.due_at)
        .order_by(Delivery.due_at)
    )
    return [Wave(due_at, int(count)) for due_at, count in rows if due_at is not None]


def has_open_deliveries(session: Session, issue_id: int) -> bool:
    query = select(exists().where(Delivery.issue_id == issue_id, Delivery.status.in_(OPEN)))
    return bool(session.scalar(query))


def next_attempt_at(session: Session, issue_id: int) -> datetime | None:
    """When the earliest waiting retry of the issue becomes due (None: nothing waits)."""
    query = select(func.min(Delivery.next_attempt_at)).where(
        Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.PENDING
    )
    return session.scalar(query)


def finish_issue_if_done(session: Session, issue_id: int, now: datetime | None = None) -> bool:
    """Mark the issue 'sent' once nothing is pending or sending; True when it is sent."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LedgerError(f"issue {issue_id} does not exist")
    if issue.status == IssueStatus.SENT:
        return True
    if issue.status != IssueStatus.SENDING or has_open_deliveries(session, issue_id):
        return False
    issue.status = IssueStatus.SENT
    # A send to those who joined later finishes again: the issue keeps its first send time.
    issue.sent_at = issue.sent_at or now or utcnow()
    return True
