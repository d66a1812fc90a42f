"""The delivery report of an issue: who got it, who failed and why, who bounced, complained or
unsubscribed after it, who joined the list after it went out, and who has no copy of it.

Each list is read a page at a time by keyset (the rows' own ids, ascending: a page costs the
same at row 1,000,000 as at row 1), optionally narrowed to the addresses containing a text.
Counts are one query each ("missing" from small counts: see missing_count). Read-only.
benchmarks/report.py measures them at 1,000,000 recipients: every page and count is within
100 ms there but the first page of "missing", which still reads each confirmed subscription
before the first without a copy (see _query).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session

from digest.db import contains_pattern
from digest.delivery.ledger import Progress, issue_progress
from digest.models import (
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Event,
    EventKind,
    Issue,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    Verdict,
)

Kind = Literal[
    "sent", "failed", "skipped", "bounced", "complained", "unsubscribed", "joined", "missing"
]
KINDS: tuple[str, ...] = get_args(Kind)
BOUNCES = (Verdict.HARD, Verdict.SOFT)
PAGE_MAX = 500
SEARCH_MAX = 320


@dataclass(frozen=True, slots=True)
class ReportRow:
    key: int  # the keyset: pass the last row's as `after` for the next page
    email: str
    at: datetime | None  # naive UTC: when it was sent, failed, came back, joined ...
    detail: str  # the ledger's error, the bounce's status and text, the subscription's status


@dataclass(frozen=True, slots=True)
class ReportPage:
    kind: Kind
    rows: list[ReportRow]
    next_after: int | None  # None: the last page


@dataclass(frozen=True, slots=True)
class Report:
    issue_id: int
    progress: Progress
    counts: dict[str, int]  # one per Kind
    first_sent_at: datetime | None  # when the first copy went out: "after it" starts there


def _first_sent(session: Session, issue_id: int) -> datetime | None:
    # One entry of the partial index ix_deliveries_sent_at (its condition spelled out for SQLite).
    return session.scalar(
        select(func.min(Delivery.sent_at)).where(
            Delivery.issue_id == issue_id, Delivery.sent_at.is_not(None)
        )
    )


def _no_delivery(issue_id: int) -> ColumnElement[bool]:
    return ~exists().where(
        Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscription.subscriber_id
    )


def _query(issue: Issue, kind: Kind, first_sent: datetime | None) -> tuple[Any, Any, Any]:
    """(rows as key, email, at, detail; the key column; the email column) of one kind;
    `first_sent`, when the first copy went out, starts "joined" (None: nobody joined after)."""
    if kind in ("sent", "failed", "skipped"):
        status = DeliveryStatus(kind)
        at = Delivery.sent_at if kind == "sent" else Delivery.next_attempt_at
        detail = func.coalesce(Delivery.last_error, "")
        query = select(Delivery.id, Delivery.email, at, detail).where(
            Delivery.issue_id == issue.id, Delivery.status == status
        )
        return query, Delivery.id, Delivery.email
    if kind in ("bounced", "complained"):
        verdicts = BOUNCES if kind == "bounced" else (Verdict.COMPLAINT,)
        said = (
            type_coerce(DeliveryEvent.verdict, String())
            + literal(" ")
            + DeliveryEvent.status
            + literal(": ")
            + DeliveryEvent.detail
        )
        query = select(DeliveryEvent.id, DeliveryEvent.email, DeliveryEvent.created_at, said).where(
            DeliveryEvent.issue_id == issue.id, DeliveryEvent.verdict.in_(verdicts)
        )
        return query, DeliveryEvent.id, DeliveryEvent.email
    if kind == "unsubscribed":
        # Their own copy went out, then they left the list (by any way: link, mail, admin).
        query = (
            select(Event.id, Delivery.email, Event.created_at, literal("", String()))
            .join(
                Delivery,
                and_(
                    Delivery.issue_id == issue.id,
                    Delivery.subscriber_id == Event.subscriber_id,
                    Delivery.status == DeliveryStatus.SENT,
                ),
            )
            .where(
                Event.kind == EventKind.UNSUBSCRIBED,
                Event.list_id == issue.list_id,
                Event.created_at >= Delivery.sent_at,
            )
        )
        return query, Event.id, Delivery.email
    joined_at = func.coalesce(Subscription.confirmed_at, Subscription.created_at)
    base = (
        select(
            Subscription.id, Subscriber.email, joined_at, type_coerce(Subscription.status, String())
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id == issue.list_id)
    )
    if kind == "joined":
        if first_sent is None:
            return base.where(literal(False)), Subscription.id, Subscriber.email
        # joined_at > first, spelled so the planner can estimate it from each column's
        # statistics (a COALESCE gets a blind third of the rows, and a hash join of them all).
        later = or_(
            Subscription.confirmed_at > first_sent,
            and_(Subscription.confirmed_at.is_(None), Subscription.created_at > first_sent),
        )
        return base.where(later), Subscription.id, Subscriber.email
    # missing: who `send to the rest` would plan (as planning picks them), no copy yet.
    # Those are mostly the newest, after a million with a copy: the anti-join probes the
    # deliveries' unique index once per subscription (1.2 s at 1M; a merge of both indexes
    # 0.7 s). Skipping the ones planned would need a record, made at planning, of who was not.
    query = base.where(
        Subscription.status == SubscriptionStatus.CONFIRMED,
        _no_delivery(issue.id),
        ~exists().where(Suppression.email == Subscriber.email),
    )
    return query, Subscription.id, Subscriber.email


def _matching(email: Any, pattern: str) -> ColumnElement[bool]:
    """Addresses containing `pattern` (lower-case, a LIKE pattern) in a kind's `email` column
    (as _query gives it), spelled so the subscribers' trigram index finds them: ILIKE on the
    column itself (`lower(email)` hides it from the index; the same match in PostgreSQL and
    SQLite). A delivery's address is its subscriber's, copied at planning (addresses never
    change, and erasure deletes the deliveries too), so for the ledger's rows the index picks
    the candidates and the row's own address is still checked."""
    by_index = Subscriber.email.ilike(pattern, "\\")
    if email is Subscriber.email:
        return by_index
    own = func.lower(email).like(pattern, "\\")
    if email is Delivery.email:
        found = select(Subscriber.id).where(by_index)
        return and_(Delivery.subscriber_id.in_(found), own)
    return own


def report_page(
    session: Session,
    issue: Issue,
    kind: Kind,
    *,
    after: int = 0,
    limit: int = 50,
    search: str = "",
) -> ReportPage:
    """One page of a kind's rows, by ascending key after `after`, addresses containing
    `search` (any case) when given."""
    limit = max(1, min(limit, PAGE_MAX))
    first_sent = _first_sent(session, issue.id) if kind == "joined" else None
    query, key, email = _query(issue, kind, first_sent)
    # No address holds a control character, and PostgreSQL refuses a NUL in a parameter.
    search = "".join(ch for ch in search[:SEARCH_MAX] if ch >= " " and ch != "\x7f").strip()
    if search:
        query = query.where(_matching(email, contains_pattern(search.lower())))
    # "joined" are the newest subscriptions: walking the primary key would read every older
    # one first (451 ms at 1M), so its order hides the key from the planner (`+ 0`), which
    # then takes the joined alone from their indexes and sorts them (12 ms).
    order = key + 0 if kind == "joined" else key
    rows = session.execute(query.where(key > after).order_by(order).limit(limit + 1)).all()
    page = [ReportRow(int(k), str(e), at, " ".join(str(d or "").split())) for k, e, at, d in rows]
    more = len(page) > limit
    page = page[:limit]
    return ReportPage(kind, page, page[-1].key if more and page else None)


def count_of(session: Session, issue: Issue, kind: Kind, first_sent: datetime | None) -> int:
    """How many rows one kind has (one COUNT over its query)."""
    query, _, _ = _query(issue, kind, first_sent)
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def missing_count(session: Session, issue: Issue) -> int:
    """How many "missing" rows there are, without the anti-join of every confirmed subscription
    against every delivery (900 ms at 1M). Missing = C - D + (D not in C), C the confirmed,
    unsuppressed subscriptions, D the issue's deliveries: every delivery was planned from a
    subscription of the list, which only goes together with its deliveries (erasure) or its
    list (and the issue). So it is: the confirmed, minus the deliveries, plus the deliveries of
    subscriptions no longer confirmed, minus the confirmed but suppressed without one; the last
    two read only those few rows. One statement: one snapshot."""
    confirmed = Subscription.status == SubscriptionStatus.CONFIRMED
    of_list = Subscription.list_id == issue.list_id
    others = [s for s in SubscriptionStatus if s != SubscriptionStatus.CONFIRMED]
    has_copy = ~_no_delivery(issue.id)
    total = (
        select(func.count()).select_from(Subscription).where(of_list, confirmed).scalar_subquery()
        - select(func.count())
        .select_from(Delivery)
        .where(Delivery.issue_id == issue.id)
        .scalar_subquery()
        + select(func.count())
        .select_from(Subscription)
        .where(of_list, Subscription.status.in_(others), has_copy)
        .scalar_subquery()
        - select(func.count())
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .join(Suppression, Suppression.email == Subscriber.email)
        .where(of_list, confirmed, _no_delivery(issue.id))
        .scalar_subquery()
    )
    return int(session.scalar(select(total)) or 0)


def issue_report(session: Session, issue: Issue) -> Report:
    """The issue's counts: the ledger's by status, then one count per kind of list.
    benchmarks/report.py measures it at 1,000,000 recipients."""
    progress = issue_progress(session, issue.id)
    first_sent = _first_sent(session, issue.id)
    counts = {"sent": progress.sent, "failed": progress.failed, "skipped": progress.skipped}
    others: tuple[Kind, ...] = ("bounced", "complained", "unsubscribed", "joined")
    for kind in others:
        counts[kind] = count_of(session, issue, kind, first_sent)
    counts["missing"] = missing_count(session, issue)
    return Report(issue.id, progress, counts, first_sent)
