"""Who gets which copy, when: a reader's edition, topic set and due moment, in SQL.

Planning (`digest.delivery.ledger.plan_deliveries`) and freezing the variants
(`digest.issues.variants`) read the same expressions here, so the variants frozen at approval
are exactly the (edition, topic set) pairs planning looks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, DateTime, String, case, func, literal, select
from sqlalchemy.orm import Session

from digest.models import MailingList, Subscriber, Subscription, SubscriptionStatus, Suppression
from digest.subscribers.topics import parse_hhmm

UTC_ZONE = ZoneInfo("UTC")


def primary_language(tag: str | None) -> str | None:
    """ "fr-CA", "FR_fr" -> "fr"; None or "" -> None."""
    if not tag:
        return None
    return tag.strip().replace("_", "-").split("-")[0].lower() or None


def list_editions(lst: MailingList) -> tuple[str, ...]:
    """The list's editions, its own language first."""
    main = primary_language(lst.language) or "en"
    extra = (primary_language(e) for e in lst.editions or ())
    return (main, *sorted({e for e in extra if e and e != main}))


def edition_of(language: str | None, lst: MailingList) -> str:
    """The edition a reader or a source of that language belongs to: its own, when the list
    has that edition, else the list's main one."""
    editions = list_editions(lst)
    lang = primary_language(language)
    return lang if lang in editions else editions[0]


def edition_column(lst: MailingList) -> ColumnElement[str]:
    """`edition_of(subscriber.language)` in SQL (readers' languages are stored primary)."""
    editions = list_editions(lst)
    if len(editions) == 1:
        return literal(editions[0], String())
    return case(
        (Subscriber.language.in_(editions[1:]), Subscriber.language),
        else_=literal(editions[0], String()),
    )


def receiving(lst: MailingList) -> list[ColumnElement[bool]]:
    """The readers an issue of the list goes to now: confirmed and not suppressed."""
    return [
        Subscription.list_id == lst.id,
        Subscription.status == SubscriptionStatus.CONFIRMED,
        ~select(Suppression.id).where(Suppression.email == Subscriber.email).exists(),
    ]


def reader_groups(session: Session, lst: MailingList) -> list[tuple[str, str, int]]:
    """(edition, topic_ids, readers) for each pair present among the list's readers."""
    edition = edition_column(lst).label("edition")
    rows = session.execute(
        select(edition, Subscription.topic_ids, func.count())
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(*receiving(lst))
        .group_by(edition, Subscription.topic_ids)
    )
    return [(str(e), str(t or ""), int(n)) for e, t, n in rows]


def zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return UTC_ZONE


def local_due(at: time, tz: ZoneInfo, now: datetime) -> datetime:
    """The first moment at or after `now` (naive UTC) that reads `at` on a clock in `tz`,
    as naive UTC. A time a DST gap skips is taken as its fold-0 reading (an hour on)."""
    local_now = now.replace(tzinfo=UTC_ZONE).astimezone(tz)
    day: date = local_now.date()
    for offset in range(3):
        moment = datetime.combine(day + timedelta(days=offset), at, tzinfo=tz)
        utc = moment.astimezone(UTC_ZONE).replace(tzinfo=None)
        if utc >= now:
            return utc
    raise AssertionError("unreachable: a local time recurs within three days")


def reader_zones(session: Session, lst: MailingList) -> list[str | None]:
    rows = session.execute(
        select(Subscriber.timezone)
        .select_from(Subscription)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id == lst.id, Subscription.status == SubscriptionStatus.CONFIRMED)
        .distinct()
    )
    return [row[0] for row in rows]


def due_column(
    lst: MailingList, zones: Iterable[str | None], now: datetime
) -> ColumnElement[datetime]:
    """When each reader's delivery becomes due: at once, or, for a list sending at a local
    time, the next such time in the reader's zone (the list's zone when theirs is unknown)."""
    if not lst.send_local_time:
        return literal(now, DateTime())
    at = parse_hhmm(lst.send_local_time)
    default = local_due(at, zone(None, lst.timezone), now)
    whens: Sequence[tuple[ColumnElement[bool], ColumnElement[datetime]]] = [
        (
            Subscriber.timezone == name,
            literal(local_due(at, zone(name, lst.timezone), now), DateTime()),
        )
        for name in sorted({z for z in zones if z})
    ]
    if not whens:
        return literal(default, DateTime())
    return case(*whens, else_=literal(default, DateTime()))
