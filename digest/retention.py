"""Retention: old delivery rows and events become per-issue totals, then go.

An issue's delivery rows go once the issue is over (sent or cancelled) and older than the
retention age (counted from when it was sent, else created). Events go when older than that
age and about an issue (bounces, complaints, failed deliveries); the others (subscribed,
confirmed, unsubscribed ...) stay: they are a subscriber's consent record.

Rows go in chunks, each one transaction that deletes the chunk and adds its counts to
`issue_totals`, so the totals always equal what was removed, even if a run stops midway.
No row of an issue being sent is ever read: the issues are chosen by status first, and on
PostgreSQL a chunk skips rows another transaction holds (SKIP LOCKED) instead of waiting.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from digest.db import is_postgres
from digest.models import (
    Delivery,
    Event,
    EventKind,
    Issue,
    IssueStatus,
    IssueTotal,
    TotalRecord,
    utcnow,
)

log = logging.getLogger(__name__)

DEFAULT_MONTHS = 13
CHUNK = 5000
OVER = (IssueStatus.SENT, IssueStatus.CANCELLED)
# Events about an issue's mail; the rest are consent records and are kept.
PRUNED_EVENTS = (
    EventKind.DELIVERY_FAILED,
    EventKind.BOUNCED,
    EventKind.COMPLAINED,
    EventKind.SOFT_BOUNCE,
)

_deliveries = cast(Table, Delivery.__table__)
_events = cast(Table, Event.__table__)
_totals = cast(Table, IssueTotal.__table__)


@dataclass(frozen=True, slots=True)
class Pruned:
    issues: int = 0  # issues whose delivery rows were removed
    deliveries: int = 0
    events: int = 0
    chunks: int = 0
    seconds: float = 0.0


def cutoff(now: datetime, months: int) -> datetime:
    """`months` months before `now` (a month as 30.44 days: retention needs no calendar)."""
    return now - timedelta(days=round(months * 30.44))


def old_issue_ids(session: Session, before: datetime) -> list[int]:
    since = func.coalesce(Issue.sent_at, Issue.created_at)
    query = select(Issue.id).where(Issue.status.in_(OVER), since < before).order_by(Issue.id)
    return list(session.scalars(query))


def prune(
    sf: sessionmaker[Session],
    *,
    months: int = DEFAULT_MONTHS,
    chunk: int = CHUNK,
    now: datetime | None = None,
    pause: float = 0.0,
) -> Pruned:
    """Summarise and remove what is older than `months`; each chunk of at most `chunk` rows
    commits on its own, `pause` seconds apart (to leave the database to the senders)."""
    if months < 1:
        raise ValueError("retention must keep at least one month")
    started = time.monotonic()
    before = cutoff(now or utcnow(), months)
    with sf() as session:
        issues = old_issue_ids(session, before)
    deliveries = events = chunks = emptied = 0
    for issue_id in issues:
        removed_any = False
        while removed := _delivery_chunk(sf, issue_id, chunk):
            deliveries += removed
            chunks += 1
            removed_any = True
            if pause:
                time.sleep(pause)
        emptied += removed_any
    while removed := _event_chunk(sf, before, chunk):
        events += removed
        chunks += 1
        if pause:
            time.sleep(pause)
    result = Pruned(emptied, deliveries, events, chunks, time.monotonic() - started)
    if deliveries or events:
        log.info(
            "retention: removed %d delivery rows of %d issues and %d events older than %s",
            deliveries,
            emptied,
            events,
            before.date(),
        )
    return result


def _delivery_chunk(sf: sessionmaker[Session], issue_id: int, size: int) -> int:
    with sf.begin() as session:
        ids = select(Delivery.id).where(Delivery.issue_id == issue_id).limit(size)
        if is_postgres(session):
            ids = ids.with_for_update(skip_locked=True)
        gone = session.execute(
            delete(_deliveries)
            .where(_deliveries.c.id.in_(ids.scalar_subquery()))
            .returning(_deliveries.c.status)
        ).all()
        add_totals(
            session,
            TotalRecord.DELIVERY,
            Counter((issue_id, str(status)) for (status,) in gone).items(),
        )
        return len(gone)


def _event_chunk(sf: sessionmaker[Session], before: datetime, size: int) -> int:
    with sf.begin() as session:
        ids = (
            select(Event.id)
            .where(
                Event.created_at < before,
                Event.issue_id.is_not(None),
                Event.kind.in_(PRUNED_EVENTS),
            )
            .limit(size)
        )
        if is_postgres(session):
            ids = ids.with_for_update(skip_locked=True)
        gone = session.execute(
            delete(_events)
            .where(_events.c.id.in_(ids.scalar_subquery()))
            .returning(_events.c.issue_id, _events.c.kind)
        ).all()
        counts = Counter((int(issue_id), str(kind)) for issue_id, kind in gone)
        add_totals(session, TotalRecord.EVENT, counts.items())
        return len(gone)


def add_totals(
    session: Session, record: TotalRecord, counts: Iterable[tuple[tuple[int, str], int]]
) -> None:
    now = utcnow()
    rows = [
        {"issue_id": i, "record": record.value, "outcome": outcome, "count": n, "updated_at": now}
        for (i, outcome), n in counts
    ]
    if not rows:
        return
    dialect: Any = postgresql if is_postgres(session) else sqlite
    stmt = dialect.insert(_totals).values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["issue_id", "record", "outcome"],
            set_={"count": _totals.c.count + stmt.excluded.count, "updated_at": now},
        )
    )


def issue_totals(session: Session, issue_id: int) -> dict[tuple[str, str], int]:
    """What retention removed of an issue: (record, outcome) -> count."""
    rows = session.execute(
        select(IssueTotal.record, IssueTotal.outcome, IssueTotal.count).where(
            IssueTotal.issue_id == issue_id
        )
    )
    return {(str(record), outcome): count for record, outcome, count in rows}
