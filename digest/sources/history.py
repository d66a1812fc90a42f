"""A source's history: one row per fetch (what it found, or why it failed), the newest KEEP
per source kept, for the admin's page of a source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest.models import FetchOutcome, SourceFetch

KEEP = 50
ERROR_MAX = 500


def record_fetch(
    session: Session,
    source_id: int,
    now: datetime,
    *,
    error: str | None = None,
    not_modified: bool = False,
    seen: int = 0,
    new: int = 0,
    updated: int = 0,
) -> None:
    """Add the fetch and drop the source's rows older than the newest KEEP; no commit."""
    if error is not None:
        outcome = FetchOutcome.ERROR
    elif not_modified:
        outcome = FetchOutcome.NOT_MODIFIED
    else:
        outcome = FetchOutcome.NEW_ITEMS if new else FetchOutcome.NO_NEW_ITEMS
    session.add(
        SourceFetch(
            source_id=source_id,
            at=now,
            outcome=outcome,
            seen=seen,
            new=new,
            updated=updated,
            error=error[:ERROR_MAX] if error else None,
        )
    )
    session.flush()
    oldest_kept = (
        select(SourceFetch.id)
        .where(SourceFetch.source_id == source_id)
        .order_by(SourceFetch.id.desc())
        .offset(KEEP - 1)
        .limit(1)
        .scalar_subquery()
    )
    session.execute(
        delete(SourceFetch)
        .where(SourceFetch.source_id == source_id, SourceFetch.id < oldest_kept)
        .execution_options(synchronize_session=False)
    )


def recent_fetches(session: Session, source_id: int, limit: int = 20) -> Sequence[SourceFetch]:
    """The source's latest fetches, newest first."""
    query = (
        select(SourceFetch)
        .where(SourceFetch.source_id == source_id)
        .order_by(SourceFetch.id.desc())
        .limit(limit)
    )
    return session.scalars(query).all()
