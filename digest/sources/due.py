"""Which sources are due for a fetch: never fetched, or their next_fetch_at has come."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digest.models import Source, utcnow


def due_source_ids(session: Session, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    stmt = (
        select(Source.id)
        .where(Source.kind != "manual")
        .where(or_(Source.next_fetch_at.is_(None), Source.next_fetch_at <= now))
        .order_by(Source.id)
    )
    return list(session.scalars(stmt))
