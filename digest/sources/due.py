"""Which sources are due for a fetch (the condition lives in `health.is_due`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Source, utcnow
from digest.sources.health import is_due


def due_source_ids(session: Session, now: datetime | None = None) -> list[int]:
    return list(
        session.scalars(select(Source.id).where(is_due(now or utcnow())).order_by(Source.id))
    )
