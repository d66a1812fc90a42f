"""Upsert parsed items into the store: one item per (source, guid) and per canonical URL.

Running it twice changes nothing; an item seen before keeps its first_seen_at and is updated
only when the source changed it. The same news from another source (same canonical URL, or a
near-identical title close in time) is not stored again. Does not commit.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.models import Item, Source
from digest.sources.dates import store_time
from digest.sources.parsed import ParsedItem
from digest.sources.text import one_line
from digest.urls import canonical_url

_CHUNK = 500
TITLE_WINDOW = timedelta(days=7)  # two sources' near-identical titles this close are one news
TITLE_SIMILARITY = 0.93
TITLE_MIN_WORDS = 4  # "Weekly update" recurs; only longer titles identify a piece of news
_NOT_WORD = re.compile(r"[\W_]+")
_NUMBER = re.compile(r"\d+")


def _prefix(key: str) -> str:
    """The first two words that are not numbers: candidates for near-identical titles."""
    return " ".join([w for w in key.split() if not w.isdigit()][:2])


@dataclass(slots=True)
class StoreCounts:
    new: int = 0
    updated: int = 0
    duplicates: int = 0  # the same news already stored from another source (or twice here)


def title_key(title: str) -> str:
    """Case, accents, punctuation, quotes and dashes folded away: the title's words."""
    folded = unicodedata.normalize("NFKD", title.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _NOT_WORD.sub(" ", folded).strip()


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _storable_title(item: ParsedItem) -> str:
    if item.title:
        return item.title
    if item.summary_text:
        return one_line(item.summary_text)[:80]
    return item.url or ""


@dataclass(slots=True)
class _Row:
    guid: str
    title: str
    url: str | None
    canonical_url: str | None
    summary_html: str
    summary_text: str
    published_at: datetime | None
    image_url: str | None
    categories: list[str]

    def differs(self, item: Item) -> bool:
        return (
            item.title != self.title
            or item.url != self.url
            or item.summary_html != self.summary_html
            or item.summary_text != self.summary_text
            or item.published_at != self.published_at
            or item.image_url != self.image_url
            or list(item.categories or ()) != self.categories
        )

    def apply(self, item: Item) -> None:
        item.title, item.url = self.title, self.url
        item.summary_html, item.summary_text = self.summary_html, self.summary_text
        item.published_at, item.image_url = self.published_at, self.image_url
        item.categories = list(self.categories)


def _rows(items: Iterable[ParsedItem]) -> list[_Row]:
    rows: list[_Row] = []
    guids: set[str] = set()
    for item in items:
        title = _storable_title(item)
        if not title or item.guid in guids:
            continue
        guids.add(item.guid)
        rows.append(
            _Row(
                guid=item.guid,
                title=title,
                url=item.url,
                canonical_url=canonical_url(item.url),
                summary_html=item.summary_html,
                summary_text=item.summary_text,
                published_at=store_time(item.published_at),
                image_url=item.image_url,
                categories=list(item.categories),
            )
        )
    return rows


class TitleIndex:
    """Recent items' titles by their words, for the near-identical-title check.

    Read with one query when the run stores its first new item (a run of unchanged sources
    reads nothing) and kept up to date as items are stored, so a collect run over many
    sources reads the recent titles once. Titles are bucketed by their first two words and
    their numbers ("Report 12" is not "Report 13"); only a bucket is compared with difflib.
    """

    def __init__(self, now: datetime, days: int = 60) -> None:
        self.now = now
        self.days = days
        self.loads = 0  # how many times the recent titles were read (at most one)
        self._buckets: dict[tuple[str, tuple[str, ...]], list[tuple[str, datetime, int]]] = {}

    def load(self, session: Session) -> TitleIndex:
        """Read the recent titles, the first time only."""
        if self.loads:
            return self
        self.loads += 1
        query = select(Item.source_id, Item.title, Item.published_at, Item.first_seen_at).where(
            Item.first_seen_at >= self.now - timedelta(days=self.days)
        )
        for source_id, title, published, first_seen in session.execute(query):
            self.add(title, published or first_seen, source_id)
        return self

    @staticmethod
    def _bucket(key: str) -> tuple[str, tuple[str, ...]] | None:
        words = key.split()
        if len(words) < TITLE_MIN_WORDS:
            return None
        return _prefix(key), tuple(_NUMBER.findall(key))

    def add(self, title: str, when: datetime, source_id: int) -> None:
        key = title_key(title)
        bucket = self._bucket(key)
        if bucket is not None:
            self._buckets.setdefault(bucket, []).append((key, when, source_id))

    def seen(self, title: str, when: datetime, source_id: int) -> bool:
        """Another source has a near-identical title within TITLE_WINDOW of `when`."""
        key = title_key(title)
        bucket = self._bucket(key)
        if bucket is None:
            return False
        for other, other_when, other_source in self._buckets.get(bucket, ()):
            if other_source == source_id or abs(other_when - when) > TITLE_WINDOW:
                continue
            if (
                other == key
                or difflib.SequenceMatcher(None, key, other).ratio() >= TITLE_SIMILARITY
            ):
                return True
        return False


def store_items(
    session: Session,
    source: Source,
    items: Iterable[ParsedItem],
    now: datetime,
    titles: TitleIndex | None = None,
) -> StoreCounts:
    """Insert new items and update changed ones for `source`; flushes, never commits.

    `titles` is shared by a run over many sources (read when the first new item comes);
    without it one is read for this call, if it has new items.
    """
    counts = StoreCounts()
    rows = _rows(items)
    if not rows:
        return counts
    existing: dict[str, Item] = {}
    for chunk in _chunks([r.guid for r in rows]):
        query = select(Item).where(Item.source_id == source.id, Item.guid.in_(chunk))
        existing.update({item.guid: item for item in session.scalars(query)})
    fresh = [r for r in rows if r.guid not in existing]
    for row in rows:
        item = existing.get(row.guid)
        if item is not None and row.differs(item):
            row.apply(item)
            counts.updated += 1
    taken: set[str] = set()
    wanted = [r.canonical_url for r in fresh if r.canonical_url]
    for chunk in _chunks(wanted):
        taken.update(
            session.scalars(select(Item.canonical_url).where(Item.canonical_url.in_(chunk)))
        )
    if fresh:
        titles = (titles or TitleIndex(now)).load(session)
    to_insert: list[_Row] = []
    for row in fresh:
        when = row.published_at or now
        if (row.canonical_url and row.canonical_url in taken) or (
            titles is not None and titles.seen(row.title, when, source.id)
        ):
            counts.duplicates += 1
            continue
        if row.canonical_url:
            taken.add(row.canonical_url)
        to_insert.append(row)
    counts.new = _insert(session, source, to_insert, now)
    if titles is not None:
        for row in to_insert:
            titles.add(row.title, row.published_at or now, source.id)
    counts.duplicates += len(to_insert) - counts.new
    return counts


def _new_item(source: Source, row: _Row, now: datetime) -> Item:
    return Item(
        source_id=source.id,
        guid=row.guid,
        url=row.url,
        canonical_url=row.canonical_url,
        title=row.title,
        summary_html=row.summary_html,
        summary_text=row.summary_text,
        published_at=row.published_at,
        image_url=row.image_url,
        categories=list(row.categories),
        first_seen_at=now,
    )


def _insert(session: Session, source: Source, rows: list[_Row], now: datetime) -> int:
    """Insert in one batch; if another collector won a race on a URL, one by one."""
    if not rows:
        return 0
    try:
        with session.begin_nested():
            session.add_all([_new_item(source, row, now) for row in rows])
    except IntegrityError:
        inserted = 0
        for row in rows:
            try:
                with session.begin_nested():
                    session.add(_new_item(source, row, now))
                inserted += 1
            except IntegrityError:
                continue
        return inserted
    return len(rows)
