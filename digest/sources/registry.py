"""The sources in the store: add one (the CLI after `sources try`, the demo), find one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.db import MAX_INT
from digest.errors import DigestError, NotFound
from digest.models import Source, SourceKind
from digest.sources.language import known_language

NAME_MAX = 200


def find_source(session: Session, url: str) -> Source | None:
    return session.scalar(select(Source).where(Source.url == url))


def get_source(session: Session, source_id: int) -> Source:
    source = session.get(Source, source_id) if 0 < source_id <= MAX_INT else None
    if source is None:
        raise NotFound(f"no source {source_id}")
    return source


def source_names(session: Session) -> dict[int, str]:
    return {int(i): name for i, name in session.execute(select(Source.id, Source.name))}


def add_source(
    session: Session,
    *,
    url: str,
    kind: SourceKind,
    name: str | None = None,
    selectors: dict[str, Any] | None = None,
    language: str | None = None,
    fetch_interval_minutes: int = 60,
) -> Source:
    """A new source; DigestError when its URL is one already. `name` defaults to the URL's
    host. The caller commits."""
    existing = find_source(session, url)
    if existing is not None:
        raise DigestError(f"{url} is already source {existing.id} ({existing.name})")
    if fetch_interval_minutes < 1:
        raise DigestError("the fetch interval is at least one minute")
    source = Source(
        name=(name or urlsplit(url).netloc or url)[:NAME_MAX],
        url=url,
        kind=SourceKind(kind),
        selectors=selectors or {},
        language=language,
        fetch_interval_minutes=fetch_interval_minutes,
    )
    session.add(source)
    session.flush()
    return source


def set_source_language(session: Session, source_id: int, language: str) -> Source:
    """Set (or, with "", clear) a source's language: the edition its items go to, and the
    language its dates are read in. Detection fills it only while it is unset."""
    source = session.get(Source, source_id) if 0 < source_id <= MAX_INT else None
    if source is None:
        raise NotFound(f"no source {source_id}")
    value = language.strip()
    if value and known_language(value) is None:
        raise DigestError(f"unknown language {value[:40]!r}")
    source.language = known_language(value) if value else None
    session.flush()
    return source
