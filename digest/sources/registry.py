"""The sources in the store: add one (after a `try`, from the CLI, the editor or the API),
find one, edit its selectors, language, name and interval, disable or enable it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import MAX_INT
from digest.errors import DigestError, NotFound
from digest.models import ListSource, Source, SourceKind, Topic
from digest.sources.errors import FetchRefused, SourceError
from digest.sources.language import known_language
from digest.sources.listing import Selectors
from digest.sources.reader import ReadResult, read_once

NAME_MAX = 200
URL_MAX = 2000
INTERVAL_MIN, INTERVAL_MAX = 5, 7 * 24 * 60
SELECTOR_FIELDS = (
    "item", "title", "link", "date", "summary", "image", "next", "page_param", "date_order",
)  # fmt: skip


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


def web_target(url: str) -> str:
    """A source address typed into a page or an API body: http(s) only (never a local file,
    which only the operator's own command line may name), bounded, one line. Which hosts may
    be reached is the fetcher's address policy, checked when it connects."""
    text = url.strip()
    if not text:
        raise SourceError("give the address of a feed or a news page")
    if len(text) > URL_MAX or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise SourceError(f"an address is one line of at most {URL_MAX} characters")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FetchRefused(f"only http(s) addresses can be sources here, not {text[:80]!r}")
    return text


KINDS = ("auto", "feed", "html")


def try_source(
    url: str,
    *,
    kind: str = "auto",
    selectors: Selectors | None = None,
    language: str = "",
    candidate: int = 0,
    settings: Settings,
) -> ReadResult:
    """What a source at this address would give now, nothing stored: the editor's and the
    API's `sources try` (http(s) only; the fetcher's address policy applies). SourceError
    says why it cannot be read."""
    target = web_target(url)
    if kind not in KINDS:
        raise SourceError(f"the kind is one of {', '.join(KINDS)}")
    if not 0 <= candidate < 50:
        raise SourceError("the candidate is 1 to 50")
    hint = _given_language(language)
    return read_once(target, kind, selectors, hint, settings=settings, candidate=candidate)


def _given_language(language: str) -> str | None:
    """The language a form or body names, known; None when none is given (it is detected)."""
    value = language.strip()
    if not value:
        return None
    known = known_language(value)
    if known is None:
        raise SourceError(f"unknown language {value[:40]!r}")
    return known


def selectors_from(values: Mapping[str, Any]) -> Selectors | None:
    """Selectors from a form's or a body's fields (empty ones left out); None when none is
    given (they are inferred). SourceError says which one is wrong."""
    given: dict[str, Any] = {}
    for name in SELECTOR_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value.strip():
            if len(value) > 500:
                raise SourceError(f"the {name} selector is longer than 500 characters")
            given[name] = value.strip()
    for name in ("max_pages", "page_step"):
        value = values.get(name)
        if value not in (None, ""):
            try:
                given[name] = int(value)
            except (TypeError, ValueError):
                raise SourceError(f"{name} is a whole number") from None
    if str(values.get("siblings", "")).lower() in ("1", "true", "yes", "on"):
        given["siblings"] = True
    if not given:
        return None
    if "page_step" in given and not 1 <= given["page_step"] <= 1000:
        raise SourceError("page_step is 1 to 1000")
    if not given.get("item"):
        raise SourceError("give the item selector with the others (or none, to infer them)")
    return Selectors.from_dict(given)


def check_interval(minutes: int) -> int:
    if not INTERVAL_MIN <= minutes <= INTERVAL_MAX:
        raise SourceError(
            f"the fetch interval is {INTERVAL_MIN} to {INTERVAL_MAX} minutes (a week)"
        )
    return minutes


def clean_source_name(name: str) -> str:
    text = " ".join(name.split())
    if any(not c.isprintable() for c in text):
        raise SourceError("the name has control characters")
    if len(text) > NAME_MAX:
        raise SourceError(f"the name is longer than {NAME_MAX} characters")
    return text


def add_read_source(
    session: Session,
    url: str,
    result: ReadResult,
    *,
    name: str = "",
    language: str = "",
    fetch_interval_minutes: int = 60,
) -> Source:
    """Store what a `try` read as a source: the feed a page announced rather than the page,
    the selectors given or inferred, the language given or detected."""
    given = _given_language(language)
    return add_source(
        session,
        url=result.feed_url or url,
        kind=SourceKind(result.kind),
        name=clean_source_name(name) or result.title,
        selectors=result.selectors.to_dict() if result.selectors else {},
        language=given or result.language,
        fetch_interval_minutes=check_interval(fetch_interval_minutes),
    )


def update_source(
    session: Session,
    source_id: int,
    *,
    name: str | None = None,
    selectors: Selectors | bool | None = False,
    language: str | None = None,
    fetch_interval_minutes: int | None = None,
    enabled: bool | None = None,
    topic_ids: list[int] | None = None,
) -> tuple[Source, list[str]]:
    """Change what is given (`selectors`: new ones, None to infer them again, False to keep
    them); the source and the names of what actually changed, the same whichever page, API
    or command asks. Changed selectors or kind drop the stored validators, so the next fetch
    reads the page again."""
    source = get_source(session, source_id)
    changed: list[str] = []
    if name is not None:
        cleaned = clean_source_name(name)
        if not cleaned:
            raise SourceError("give the source a name")
        if cleaned != source.name:
            source.name, changed = cleaned, [*changed, "name"]
    if selectors is not False:
        if source.kind == SourceKind.FEED and selectors:
            raise SourceError("a feed has no selectors: they are for listing pages")
        stored = selectors.to_dict() if isinstance(selectors, Selectors) else {}
        if stored != (source.selectors or {}):
            source.selectors = stored
            source.etag = source.last_modified = None
            changed.append("selectors")
    if language is not None:
        before = source.language
        set_source_language(session, source_id, language)
        if source.language != before:
            changed.append("language")
    if fetch_interval_minutes is not None:
        minutes = check_interval(fetch_interval_minutes)
        if minutes != source.fetch_interval_minutes:
            source.fetch_interval_minutes = minutes
            changed.append("fetch_interval_minutes")
    if enabled is not None and enabled != source.enabled:
        set_enabled(session, source_id, enabled)
        changed.append("enabled")
    if topic_ids is not None:
        tagged = {t.id for t in source_topics(session, source_id)}
        set_source_topics(session, source_id, topic_ids)
        if tagged != set(topic_ids):
            changed.append("topics")
    session.flush()
    return source, changed


def set_enabled(session: Session, source_id: int, enabled: bool) -> Source:
    """A disabled source is never due (a fetch-now still reads it, on purpose); enabling it
    makes it due at once."""
    source = get_source(session, source_id)
    if source.enabled != enabled:
        source.enabled = enabled
        if enabled:
            source.next_fetch_at = None
        session.flush()
    return source


def source_topics(session: Session, source_id: int) -> list[Topic]:
    """The topics that take this source's items (only a list it feeds may have them: topics
    are checked against the list's sources, and unlinking drops it from them)."""
    return [t for t in topics_of_its_lists(session, source_id) if source_id in (t.source_ids or [])]


def set_source_topics(session: Session, source_id: int, topic_ids: list[int]) -> list[Topic]:
    """Tag the source with exactly these topics (each of a list the source feeds)."""
    source = get_source(session, source_id)
    chosen = set(topic_ids)
    topics = {t.id: t for t in topics_of_its_lists(session, source.id)}
    strangers = sorted(chosen - set(topics))
    if strangers:
        raise SourceError(f"topics {strangers[:10]} are not topics of this source's lists")
    for topic in topics.values():
        ids = list(topic.source_ids or [])
        if topic.id in chosen and source.id not in ids:
            topic.source_ids = sorted([*ids, source.id])
        elif topic.id not in chosen and source.id in ids:
            topic.source_ids = [i for i in ids if i != source.id]
    session.flush()
    return [topics[i] for i in sorted(chosen)]


def all_sources(session: Session) -> list[Source]:
    """Every source, by name: the menus that link one to a list."""
    return list(session.scalars(select(Source).order_by(Source.name, Source.id)))


def topics_of_its_lists(session: Session, source_id: int) -> list[Topic]:
    """The topics of the lists this source feeds: those it may be tagged with."""
    lists = select(ListSource.list_id).where(ListSource.source_id == source_id)
    query = select(Topic).where(Topic.list_id.in_(lists)).order_by(Topic.list_id, Topic.slug)
    return list(session.scalars(query))
