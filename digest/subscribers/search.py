"""The admin's view of subscribers: a search by any part of an address or a name, filtered by
list, status and suppression, a page at a time; and one subscriber's whole record.

Pages are keyset-paginated (newest first, `before` the last id shown), so page 1,000 costs
what page 1 does; on PostgreSQL the text search uses the trigram indexes of the subscribers
table. benchmarks/subscribers.py measures it at 1,000,000 subscribers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select, true, union
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from digest.db import contains_pattern, is_postgres
from digest.errors import NotFound
from digest.models import (
    Delivery,
    Event,
    MailingList,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)

PAGE = 50
MAX_PAGE = 500


class Suppressed(StrEnum):
    ANY = ""
    YES = "yes"
    NO = "no"


@dataclass(frozen=True, slots=True)
class Query:
    text: str = ""
    list_id: int | None = None
    status: SubscriptionStatus | None = None
    suppressed: Suppressed = Suppressed.ANY
    before_id: int | None = None
    limit: int = PAGE


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    email: str
    name: str
    created_at: Any
    suppressed: bool


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    next_before: int | None  # the `before_id` of the next page; None on the last one


def text_matches(text: str) -> ColumnElement[bool]:
    """The search box: a subscriber whose address or name contains `text`."""
    pattern = contains_pattern(text)
    return or_(
        Subscriber.email.ilike(pattern, escape="\\"),
        Subscriber.name.ilike(pattern, escape="\\"),
    )


def hashed_suppressions(session: Session) -> bool:
    """Whether PostgreSQL will test `email IN (SELECT email FROM suppressions)` row by row with
    a hash of the addresses. It hashes only what it expects to fit in hash_mem; past that it
    would rescan the whole list for each row. A hashed address costs about what its heap row
    does (the address and a tuple header), so a heap half the size of hash_mem is safe.
    SQLite looks an IN (subquery) up in the addresses' unique index, whatever its size.
    """
    if not is_postgres(session):
        return True
    fits = session.scalar(
        sql(
            "SELECT 2 * pg_relation_size(CAST(:table AS regclass))"
            " <= pg_size_bytes(current_setting('work_mem'))"
            " * current_setting('hash_mem_multiplier')::float8"
        ),
        {"table": Suppression.__tablename__},
    )
    return bool(fits)


def search(session: Session, query: Query) -> Page:
    limit = max(1, min(query.limit, MAX_PAGE))
    suppressed = exists().where(Suppression.email == Subscriber.email)
    stmt = select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.created_at)
    text = query.text.strip()
    if text:
        stmt = stmt.where(text_matches(text))
    key = Subscriber.id
    if query.list_id is not None:
        # One subscription per list and subscriber: walk the list's subscriptions backwards
        # on (list_id, status, subscriber_id) and join, rather than probe every subscriber.
        stmt = stmt.join(Subscription, Subscription.subscriber_id == Subscriber.id).where(
            Subscription.list_id == query.list_id
        )
        if query.status is not None:
            stmt = stmt.where(Subscription.status == query.status)
        key = Subscription.subscriber_id
    elif query.status is not None and (text or query.suppressed != Suppressed.ANY):
        conditions = [
            Subscription.subscriber_id == Subscriber.id,
            Subscription.status == query.status,
        ]
        stmt = stmt.where(exists().where(*conditions))
    elif query.status is not None:
        # Every list's subscriptions in this status, each walked backwards on its index for
        # one page, and merged (lists are few): the page's ids are among those.
        lists = session.scalars(select(MailingList.id)).all()
        walks = [
            select(Subscription.subscriber_id)
            .where(Subscription.list_id == list_id, Subscription.status == query.status)
            .where(
                Subscription.subscriber_id < query.before_id
                if query.before_id is not None
                else true()
            )
            .order_by(Subscription.subscriber_id.desc())
            .limit(limit + 1)
            for list_id in lists
        ]
        if not walks:
            return Page([], None)
        # Each walk in its own subquery: SQLite takes no LIMIT inside a UNION's members.
        parts = [select(w.subquery().c.subscriber_id) for w in walks]
        ids = union(*parts).subquery() if len(parts) > 1 else walks[0].subquery()
        stmt = stmt.where(Subscriber.id.in_(select(ids.c[0])))
    if query.suppressed == Suppressed.YES and text and hashed_suppressions(session):
        # A common text and few suppressed (at 1M, "ruiz" and 2 %: 30,000 rows walked a page):
        # joined, the suppression is probed after the text is tested on every row walked,
        # two lowercasings each. Not at the top level (IS TRUE), the IN stays a test by a
        # hash of the addresses, cheaper than the text, so the planner runs it first. A rare
        # text still goes by its trigram indexes.
        stmt = stmt.where(Subscriber.email.in_(select(Suppression.email)).is_(True))
    elif query.suppressed == Suppressed.YES:
        # A join: the suppression list is small beside the subscribers, and can drive.
        stmt = stmt.join(Suppression, Suppression.email == Subscriber.email)
    elif query.suppressed == Suppressed.NO:
        stmt = stmt.where(~suppressed)
    if query.before_id is not None:
        # On both sides of a join, so that neither index is walked from the top.
        stmt = stmt.where(Subscriber.id < query.before_id, key < query.before_id)
    stmt = stmt.order_by(key.desc()).limit(limit + 1)
    found = session.execute(stmt).all()
    more = len(found) > limit
    found = found[:limit]
    # The page's suppressions by their index, not a pass over the whole suppression list;
    # none to look up when the filter says.
    emails = [r.email for r in found]
    if query.suppressed == Suppressed.ANY:
        stopped = set(
            session.scalars(select(Suppression.email).where(Suppression.email.in_(emails)))
        )
    else:
        stopped = set(emails) if query.suppressed == Suppressed.YES else set()
    rows = [Row(r.id, r.email, r.name, r.created_at, r.email in stopped) for r in found]
    return Page(rows, rows[-1].id if more and rows else None)


def list_choices(session: Session) -> Sequence[MailingList]:
    """Every list, by name: the search's and the import's list menus."""
    return session.scalars(select(MailingList).order_by(MailingList.name)).all()


@dataclass(frozen=True, slots=True)
class Record:
    subscriber: Subscriber
    subscriptions: list[tuple[Subscription, MailingList]]
    events: Sequence[Event]
    deliveries: Sequence[Delivery]
    suppression: Suppression | None


def record(session: Session, subscriber_id: int, *, recent: int = 100) -> Record:
    """One subscriber: their subscriptions, the latest events and deliveries, suppression."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound("no such subscriber")
    subscriptions = [
        (sub, lst)
        for sub, lst in session.execute(
            select(Subscription, MailingList)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscription.subscriber_id == subscriber_id)
            .order_by(MailingList.name)
        ).all()
    ]
    events = session.scalars(
        select(Event)
        .where(Event.subscriber_id == subscriber_id)
        .order_by(Event.id.desc())
        .limit(recent)
    ).all()
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(recent)
    ).all()
    suppression = session.scalar(select(Suppression).where(Suppression.email == subscriber.email))
    return Record(subscriber, subscriptions, events, deliveries, suppression)
