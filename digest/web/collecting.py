"""Fetch a source now, from a request: the collector's own path (`collect_sources`), run by the
workers when there is a broker (enqueued, answered at once) or in this request otherwise (the
fetch has its deadline), so the page shows what it found."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.errors import DigestError
from digest.models import SourceKind
from digest.sources.collect import CollectResult, collect_sources
from digest.sources.registry import get_source

Mode = Literal["workers", "in-process"]


@dataclass(frozen=True, slots=True)
class FetchNow:
    source_id: int
    mode: Mode
    result: CollectResult | None  # None: the workers have it


def fetch_now(
    session: Session, sf: sessionmaker[Session], source_id: int, settings: Settings
) -> FetchNow:
    """Collect this source now, disabled or not (an admin asked); a manual one is refused."""
    source = get_source(session, source_id)
    if source.kind == SourceKind.MANUAL:
        raise DigestError("a manual source has nothing to fetch: its items are added by hand")
    # The collector writes in transactions of its own: hold no read open meanwhile.
    session.commit()
    if settings.broker_url:
        from workers.tasks import collect_sources as task  # Celery only with a broker

        task.delay([source_id])
        return FetchNow(source_id, "workers", None)
    (result,) = collect_sources(sf, [source_id], settings=settings)
    return FetchNow(source_id, "in-process", result)
