"""A source's health: when it last worked, what went wrong in words, and when to try again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_

from digest.models import Source, SourceKind

MAX_BACKOFF = timedelta(days=1)
MIN_INTERVAL = timedelta(minutes=5)
ERROR_MAX = 500


def _interval(source: Source) -> timedelta:
    return max(timedelta(minutes=source.fetch_interval_minutes or 60), MIN_INTERVAL)


def record_success(
    source: Source,
    now: datetime,
    etag: str | None,
    last_modified: str | None,
    note: str | None = None,
) -> None:
    """Fetched (or found unchanged): reset the failures, keep the validators for next time.
    `note`: what went wrong short of failing (a later page refused), kept as the last error."""
    source.last_fetched_at = now
    source.last_success_at = now
    source.last_error = note[:ERROR_MAX] if note else None
    source.consecutive_failures = 0
    source.next_fetch_at = now + _interval(source)
    if etag or last_modified:
        source.etag, source.last_modified = etag, last_modified


def record_failure(source: Source, now: datetime, message: str) -> None:
    """Failed: say why, and wait twice as long after each failure in a row (up to a day)."""
    source.last_fetched_at = now
    source.last_error = message[:ERROR_MAX]
    source.consecutive_failures = (source.consecutive_failures or 0) + 1
    backoff = _interval(source) * (2 ** min(source.consecutive_failures - 1, 10))
    source.next_fetch_at = now + min(backoff, MAX_BACKOFF)


def is_due(now: datetime) -> ColumnElement[bool]:
    """Sources to collect now: enabled, not manual, never fetched or whose time has come."""
    return (
        (Source.kind != SourceKind.MANUAL)
        & Source.enabled.is_(True)
        & or_(Source.next_fetch_at.is_(None), Source.next_fetch_at <= now)
    )
