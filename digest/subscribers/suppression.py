"""The suppression list: addresses that must never be sent to again (bounces, complaints, ...).

Planning excludes them set-based; these helpers add, test and lift one address, and page
through the list for the admin. An erased person (`digest.subscribers.gdpr`) stays here only
as a hash of their address (`erased_key`): nothing can mail them again (sign-up confirmations
ask `is_suppressed`, an admin's add and an import refuse the address), and nobody can read
the address back from the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.db import contains_pattern, is_postgres
from digest.errors import NotFound
from digest.models import Suppression, SuppressionReason, utcnow
from digest.subscribers.addresses import normalise_email

ERASED_PREFIX = "sha256:"
ERASED_DETAIL = "erased at the person's request (GDPR): their address is kept only as a hash"
PAGE = 50


def address_key(email: str) -> str:
    """The form suppressions are kept and looked up in. Unlike `service.normalise_email` it
    does not validate: a bounce report or the ledger hands over addresses as they were."""
    return email.strip().lower()


def suppress(session: Session, email: str, reason: SuppressionReason, detail: str = "") -> bool:
    """Add an address; True when it was not suppressed before. Safe under concurrent calls."""
    values = {
        "email": address_key(email),
        "reason": reason,
        "detail": detail[:2000],
        "created_at": utcnow(),
    }
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    stmt = (
        dialect_insert(Suppression)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["email"])
        .execution_options(preserve_rowcount=True)  # an INSERT's rowcount is kept only if asked
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def erased_key(email: str) -> str:
    """What an erased address is kept as: a one-way hash of its key. Unsalted on purpose:
    the point is to recognise the address when someone types it again."""
    digest = hashlib.sha256(address_key(email).encode("utf-8")).hexdigest()
    return ERASED_PREFIX + digest


def is_erased(session: Session, email: str) -> bool:
    return bool(session.scalar(select(exists().where(Suppression.email == erased_key(email)))))


def erased_keys(session: Session) -> set[str]:
    """Every erased hash (an import checks its rows against them; they are few)."""
    query = select(Suppression.email).where(Suppression.email.startswith(ERASED_PREFIX))
    return set(session.scalars(query))


def is_suppressed(session: Session, email: str) -> bool:
    keys = (address_key(email), erased_key(email))
    query = select(exists().where(Suppression.email.in_(keys)))
    return bool(session.scalar(query))


def unsuppress(session: Session, email: str) -> bool:
    """Lift a suppression (an operator's decision); True when there was one."""
    stmt = delete(Suppression).where(Suppression.email == address_key(email))
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def get_suppression(session: Session, suppression_id: int) -> Suppression:
    found = session.get(Suppression, suppression_id)
    if found is None:
        raise NotFound("no such suppression")
    return found


def lift(session: Session, suppression_id: int) -> Suppression:
    """An admin lifts one entry (by id: an erased one has no address to name it by)."""
    found = get_suppression(session, suppression_id)
    session.delete(found)
    session.flush()
    return found


@dataclass(frozen=True, slots=True)
class SuppressionPage:
    rows: list[Suppression]
    next_before: int | None  # the `before` of the next page; None on the last one


def page(
    session: Session,
    *,
    text: str = "",
    reason: SuppressionReason | None = None,
    before_id: int | None = None,
    limit: int = PAGE,
) -> SuppressionPage:
    """Newest first, keyset-paginated on the id (page 1,000 costs what page 1 does)."""
    limit = max(1, min(limit, 500))
    stmt = select(Suppression)
    text = text.strip().lower()
    if text:
        pattern = contains_pattern(text)
        stmt = stmt.where(
            or_(
                Suppression.email.like(pattern, escape="\\"),
                # The whole address typed finds its erased entry too.
                Suppression.email == erased_key(text),
            )
        )
    if reason is not None:
        stmt = stmt.where(Suppression.reason == reason)
    if before_id is not None:
        stmt = stmt.where(Suppression.id < before_id)
    found = list(session.scalars(stmt.order_by(Suppression.id.desc()).limit(limit + 1)))
    more = len(found) > limit
    rows = found[:limit]
    return SuppressionPage(rows, rows[-1].id if more and rows else None)


def add_manual(session: Session, email: str, detail: str = "") -> tuple[Suppression, bool]:
    """An admin suppresses an address by hand (reason "manual"); the address is checked as a
    sign-up's is. (the entry, True when it was not suppressed before)."""
    address = normalise_email(email)
    # One line of printable text (a NUL would not even fit a PostgreSQL text column).
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in detail).split())
    added = suppress(session, address, SuppressionReason.MANUAL, cleaned)
    return find(session, address), added


def find(session: Session, email: str) -> Suppression:
    found = session.scalar(select(Suppression).where(Suppression.email == address_key(email)))
    if found is None:
        raise NotFound("no such suppression")
    return found
