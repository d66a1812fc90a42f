"""Which sources are due for a fetch (the condition lives in `health.is_due`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Source, utcnow
from digest.sources.health import is_due


def due_source_ids(session: Session, now: datetime | None = None) -> list[int]:
    return list(
        session.scalars(select(Source.id).where(is_due(now or utcnow())).order_by(Source.id))
    )


def oldest_due_since(session: Session, now: datetime) -> datetime | None:
    """Since when the longest-waiting due source has been due: its next fetch time, or for a
    source never fetched, when it was added (None: no source is due)."""
    since = func.coalesce(Source.next_fetch_at, Source.created_at)
    return session.scalar(select(func.min(since)).where(is_due(now)))
