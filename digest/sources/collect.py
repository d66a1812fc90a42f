"""Collect sources: read each one, upsert its items, record its health.

One runner for every path (`digest collect`, the demo, a scheduled issue, a worker's batch):
`collect_sources` copies the sources' specs out of a short read, fetches them all at once with
no transaction open (a per-host limit keeps us polite, shared by every collecting process
through Redis when there is one, see hosts.py), then stores each source in its own short
transaction, so one broken source never stops the others and never rolls back their items.
The recent titles (the near-duplicate check) are read at most once per run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from digest.config import Settings
from digest.metrics import metrics
from digest.models import Source, SourceKind, utcnow
from digest.sources.errors import SourceError
from digest.sources.fetch import make_client, run_sync
from digest.sources.health import is_due, record_failure, record_success
from digest.sources.history import record_fetch
from digest.sources.hosts import HostLimiter, host_limiter
from digest.sources.reader import ReadResult, as_selectors, read_source
from digest.sources.store import TitleIndex, store_items

log = logging.getLogger(__name__)

__all__ = ["CollectResult", "collect_due", "collect_sources"]


@dataclass(slots=True)
class CollectResult:
    source_id: int
    new: int = 0
    updated: int = 0
    not_modified: bool = False
    error: str | None = None  # in words, as stored in Source.last_error
    duplicates: int = 0  # items already stored from another source
    seen: int = 0  # items the source's documents held

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """What reading a source needs, copied out of the session (fetching happens outside it)."""

    id: int
    url: str
    kind: str
    selectors: dict[str, Any]
    language: str | None
    etag: str | None
    last_modified: str | None

    @classmethod
    def of(cls, source: Source) -> SourceSpec:
        return cls(
            id=source.id,
            url=source.url,
            kind=str(source.kind if source.kind != SourceKind.MANUAL else SourceKind.AUTO),
            selectors=dict(source.selectors or {}),
            language=source.language,
            etag=source.etag,
            last_modified=source.last_modified,
        )


def describe(exc: BaseException) -> str:
    """An error in words for the editor; unexpected ones say so."""
    if isinstance(exc, SourceError):
        return str(exc) or type(exc).__name__
    return f"unexpected error: {type(exc).__name__}: {exc}"


async def _read(
    client: Any, spec: SourceSpec, settings: Settings, limiter: HostLimiter | None
) -> ReadResult:
    return await read_source(
        client,
        spec.url,
        kind=spec.kind,
        selectors=as_selectors(spec.selectors),
        language=spec.language,
        etag=spec.etag,
        last_modified=spec.last_modified,
        settings=settings,
        limiter=limiter,
    )


def apply_outcome(
    session: Session,
    source: Source,
    outcome: ReadResult | BaseException,
    now: datetime,
    titles: TitleIndex | None = None,
) -> CollectResult:
    """Store what reading gave (items, or the error) and the source's health; no commit."""
    if isinstance(outcome, BaseException):
        message = describe(outcome)
        record_failure(source, now, message)
        record_fetch(session, source.id, now, error=message)
        session.flush()
        metrics().fetches.labels(outcome="error").inc()
        return CollectResult(source.id, error=message)
    if outcome.not_modified:
        record_success(source, now, outcome.etag, outcome.last_modified)
        record_fetch(session, source.id, now, not_modified=True)
        session.flush()
        metrics().fetches.labels(outcome="not_modified").inc()
        return CollectResult(source.id, not_modified=True)
    for warning in outcome.warnings:
        log.warning("source %s: %s", source.id, warning)
    if source.language is None and outcome.language:
        source.language = outcome.language  # detected once; an editor may change it
    # Write first: on SQLite this opens the transaction the item savepoints nest in.
    source.last_fetched_at = now
    session.flush()
    counts = store_items(session, source, outcome.items, now, titles)
    note = "; ".join(outcome.warnings) or None
    record_success(source, now, outcome.etag, outcome.last_modified, note)
    record_fetch(
        session, source.id, now, seen=len(outcome.items), new=counts.new, updated=counts.updated
    )
    session.flush()
    metrics().fetches.labels(outcome="new_items" if counts.new else "no_new_items").inc()
    return CollectResult(
        source.id,
        new=counts.new,
        updated=counts.updated,
        duplicates=counts.duplicates,
        seen=len(outcome.items),
    )


async def _read_all(
    specs: list[SourceSpec],
    settings: Settings,
    limiter: HostLimiter,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[int, ReadResult | BaseException]:
    fetched = 0

    async def read(spec: SourceSpec) -> ReadResult:
        nonlocal fetched
        try:
            return await _read(client, spec, settings, limiter)
        finally:
            fetched += 1
            if on_progress is not None:
                on_progress(fetched, len(specs))

    if on_progress is not None:
        on_progress(0, len(specs))
    async with make_client(settings) as client:
        outcomes = await asyncio.gather(*(read(spec) for spec in specs), return_exceptions=True)
    return {spec.id: outcome for spec, outcome in zip(specs, outcomes, strict=True)}


def _store(
    factory: sessionmaker[Session],
    spec: SourceSpec,
    outcome: ReadResult | BaseException,
    now: datetime,
    titles: TitleIndex | None,
) -> CollectResult:
    try:
        with factory.begin() as session:
            source = session.get(Source, spec.id)
            if source is None:
                return CollectResult(spec.id, error="the source was deleted while collecting")
            return apply_outcome(session, source, outcome, now, titles)
    except Exception as exc:  # storing failed: keep the reason on the source, go on
        message = f"storing items failed: {describe(exc)}"
        with factory.begin() as session:
            source = session.get(Source, spec.id)
            if source is not None:
                record_failure(source, now, message)
                record_fetch(session, source.id, now, error=message)
        return CollectResult(spec.id, error=message)


def collect_sources(
    session_factory: sessionmaker[Session],
    source_ids: Sequence[int] | None = None,
    now: datetime | None = None,
    *,
    settings: Settings,
    concurrency: int | None = None,
    per_host: int | None = None,
    titles: TitleIndex | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[CollectResult]:
    """Collect these sources (None: every due one), each committed in its own transaction;
    no transaction is open while fetching. A manual source (nothing to fetch) and a source
    that no longer exists get a result saying so. `titles`: the run's title index, to share
    it or see whether it was read. on_progress(fetched, due): at the start and as each
    source's fetch ends, for a progress bar (fetching is the long part)."""
    now = now or utcnow()
    query = select(Source).order_by(Source.id)
    if source_ids is None:
        query = query.where(is_due(now))
    else:
        query = query.where(Source.id.in_(source_ids))
    with session_factory() as session:
        found = {source.id: source for source in session.scalars(query)}
        specs = [SourceSpec.of(s) for s in found.values() if s.kind != SourceKind.MANUAL]
    by_id: dict[int, CollectResult] = {}
    if specs:
        limiter = host_limiter(settings, per_host=per_host, concurrency=concurrency)
        outcomes = run_sync(_read_all(specs, settings, limiter, on_progress))
        titles = titles or TitleIndex(now)  # read when the first new item is stored
        # Unchanged and failed sources touch only their own health row: one transaction for all.
        health_only = [spec for spec in specs if not _has_items(outcomes[spec.id])]
        by_id.update(_store_health(session_factory, health_only, outcomes, now))
        for spec in specs:
            if spec.id not in by_id:
                by_id[spec.id] = _store(session_factory, spec, outcomes[spec.id], now, titles)
    if source_ids is None:
        return [by_id[spec.id] for spec in specs]
    return [by_id.get(i) or _unfetched(i, i in found) for i in source_ids]


def _unfetched(source_id: int, exists: bool) -> CollectResult:
    if exists:  # a manual source: an editor adds its items by hand
        return CollectResult(source_id)
    return CollectResult(source_id, error=f"there is no source with id {source_id}")


def collect_due(
    session_factory: sessionmaker[Session],
    now: datetime | None = None,
    **options: Any,
) -> list[CollectResult]:
    """Collect every due source (`collect_sources` with no ids; the same options)."""
    return collect_sources(session_factory, None, now, **options)


def _has_items(outcome: ReadResult | BaseException) -> bool:
    return isinstance(outcome, ReadResult) and bool(outcome.items)


def _store_health(
    factory: sessionmaker[Session],
    specs: list[SourceSpec],
    outcomes: dict[int, ReadResult | BaseException],
    now: datetime,
) -> dict[int, CollectResult]:
    """Health of item-less outcomes in one transaction; on trouble, each on its own."""
    if not specs:
        return {}
    try:
        with factory.begin() as session:
            sources = {
                s.id: s
                for s in session.scalars(select(Source).where(Source.id.in_([x.id for x in specs])))
            }
            return {
                spec.id: apply_outcome(session, sources[spec.id], outcomes[spec.id], now)
                for spec in specs
                if spec.id in sources
            }
    except Exception:  # e.g. a source deleted meanwhile: fall back to one by one
        log.exception("grouped health update failed; storing sources one by one")
        return {spec.id: _store(factory, spec, outcomes[spec.id], now, None) for spec in specs}
