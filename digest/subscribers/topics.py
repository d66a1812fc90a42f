"""A list's topics and each reader's choice of them, language and time zone.

A topic is the items of some sources, or carrying some feed categories, or saying some
keywords. A reader's choice is stored on their subscription as the ids of their topics,
ascending and comma-separated ("" = no choice = everything): one string, so planning finds
the variant of each reader by an equality in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale, UnknownLocaleError
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.errors import DigestError, NotFound
from digest.models import ListSource, MailingList, Subscriber, Subscription, Topic
from digest.subscribers.addresses import normalise_email

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
MAX_TERMS = 50
MAX_TERM = 100


def parse_topic_ids(value: str | None) -> list[int]:
    """ "3,7" -> [3, 7]; anything not a positive id is left out."""
    found = {int(part) for part in (value or "").split(",") if part.strip().isdigit()}
    return sorted(i for i in found if i > 0)


def topic_key(ids: Iterable[int]) -> str:
    """The stored form of a topic set: ids ascending, comma-separated; "" for none."""
    return ",".join(str(i) for i in sorted(set(ids)))


def list_topics(session: Session, list_id: int) -> list[Topic]:
    return list(session.scalars(select(Topic).where(Topic.list_id == list_id).order_by(Topic.id)))


def topics_of_lists(session: Session, list_ids: Iterable[int]) -> dict[int, list[Topic]]:
    """Each list's topics, in one query (a person's page shows every list they are on)."""
    found: dict[int, list[Topic]] = {list_id: [] for list_id in list_ids}
    if found:
        query = select(Topic).where(Topic.list_id.in_(found)).order_by(Topic.id)
        for topic in session.scalars(query):
            found[topic.list_id].append(topic)
    return found


def _terms(values: Sequence[str], what: str) -> list[str]:
    terms = []
    for value in values:
        term = " ".join(str(value).split())
        if not term:
            continue
        if len(term) > MAX_TERM or not term.isprintable():
            raise DigestError(f"{what} {term[:40]!r}: at most {MAX_TERM} printable characters")
        terms.append(term)
    if len(terms) > MAX_TERMS:
        raise DigestError(f"at most {MAX_TERMS} {what}s a topic")
    return sorted(set(terms), key=str.casefold)


def define_topic(
    session: Session,
    lst: MailingList,
    slug: str,
    name: str,
    *,
    source_ids: Sequence[int] = (),
    categories: Sequence[str] = (),
    keywords: Sequence[str] = (),
) -> Topic:
    """Create a topic of the list, or redefine the one with that slug."""
    if not SLUG.fullmatch(slug):
        raise DigestError(f"topic slug {slug!r}: lower-case letters, digits and hyphens")
    name = " ".join(name.split())[:200] or slug
    linked = set(session.scalars(select(ListSource.source_id).where(ListSource.list_id == lst.id)))
    strangers = sorted(set(source_ids) - linked)
    if strangers:
        raise DigestError(f"sources {strangers} are not sources of list {lst.slug!r}")
    cats, words = _terms(categories, "category"), _terms(keywords, "keyword")
    if not (source_ids or cats or words):
        raise DigestError("a topic needs at least one source, category or keyword")
    topic = session.scalar(select(Topic).where(Topic.list_id == lst.id, Topic.slug == slug))
    if topic is None:
        topic = Topic(list_id=lst.id, slug=slug)
        session.add(topic)
    topic.name = name
    topic.source_ids = sorted(set(source_ids))
    topic.categories = cats
    topic.keywords = words
    session.flush()
    return topic


def delete_topic(session: Session, lst: MailingList, slug: str) -> None:
    """Delete a topic; readers who chose it keep their other topics (none left: everything)."""
    topic = session.scalar(select(Topic).where(Topic.list_id == lst.id, Topic.slug == slug))
    if topic is None:
        raise NotFound(f"list {lst.slug!r} has no topic {slug!r}")
    session.delete(topic)
    session.flush()


def resolve_topics(session: Session, list_id: int, refs: Sequence[str]) -> str:
    """The stored topic set for topic slugs or ids of the list; unknown ones are an error."""
    topics = list_topics(session, list_id)
    by_ref = {t.slug: t.id for t in topics} | {str(t.id): t.id for t in topics}
    unknown = [r for r in refs if r.strip() and r.strip() not in by_ref]
    if unknown:
        raise DigestError(f"no such topics: {', '.join(repr(u[:40]) for u in unknown)}")
    return topic_key(by_ref[r.strip()] for r in refs if r.strip())


def clean_language(value: str) -> str | None:
    """A reader's language as stored: its primary subtag ("fr-CA" -> "fr"); "" -> None."""
    tag = value.strip().replace("_", "-")
    if not tag:
        return None
    primary = tag.split("-")[0].lower()
    try:
        Locale.parse(primary)
    except (UnknownLocaleError, ValueError):
        raise DigestError(f"unknown language {value[:40]!r}") from None
    return primary


def clean_timezone(value: str) -> str | None:
    """An IANA time zone name ("Europe/Paris"); "" -> None."""
    name = value.strip()
    if not name:
        return None
    if name not in _zones():
        raise DigestError(f"unknown time zone {value[:60]!r}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DigestError(f"unknown time zone {value[:60]!r}") from None
    return name


def parse_hhmm(value: str) -> time:
    """ "09:00" -> time(9, 0); ValueError for anything else."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) not in (1, 2) or len(minutes) != 2:
        raise ValueError(f"not a time of day (HH:MM): {value!r}")
    if not (hours.isdigit() and minutes.isdigit()):
        raise ValueError(f"not a time of day (HH:MM): {value!r}")
    return time(int(hours), int(minutes))


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def time_zones() -> list[str]:
    """Every IANA zone name, sorted: what a reader may choose from."""
    return sorted(_zones())


def configure_readers(
    session: Session,
    lst: MailingList,
    *,
    editions: Sequence[str] | None = None,
    send_local_time: str | None = None,
) -> MailingList:
    """Set the list's language editions (besides its own language) and the local time its
    issues reach each reader at ("" for at once). Bad values raise DigestError, nothing set."""
    if editions is not None:
        cleaned = [clean_language(e) for e in editions if e.strip()]
        main = clean_language(lst.language) or "en"
        lst.editions = sorted({e for e in cleaned if e and e != main})
    if send_local_time is not None:
        value = send_local_time.strip()
        if value:
            try:
                at = parse_hhmm(value)
            except ValueError as exc:
                raise DigestError(str(exc)) from None
            value = at.strftime("%H:%M")
        lst.send_local_time = value or None
    session.flush()
    return lst


def subscription_of(session: Session, list_id: int, email: str) -> Subscription:
    """The subscription of an address to a list; NotFound when there is none."""
    address = normalise_email(email)
    found = session.scalar(
        select(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id == list_id, Subscriber.email == address)
    )
    if found is None:
        raise NotFound(f"{email[:80]!r} is not subscribed to list {list_id}")
    return found
