"""The suppression list: addresses that must never be sent to again (bounces, complaints, ...).

Planning excludes them set-based; these helpers add, test and lift one address.
"""

from __future__ import annotations

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.db import is_postgres
from digest.models import Suppression, SuppressionReason, utcnow


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


def is_suppressed(session: Session, email: str) -> bool:
    query = select(exists().where(Suppression.email == address_key(email)))
    return bool(session.scalar(query))


def unsuppress(session: Session, email: str) -> bool:
    """Lift a suppression (an operator's decision); True when there was one."""
    stmt = delete(Suppression).where(Suppression.email == address_key(email))
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
