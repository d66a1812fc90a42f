"""The audit log: who did what to which issue, list, source, subscriber or user, when and from
where. Entries are written in the transaction of the change they record, so a change that
rolled back leaves no entry and a committed one always has its entry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import AuditEntry

PAGE = 100


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a signed-in user (id, email) from an address, or the CLI."""

    name: str
    address: str
    user_id: int | None = None


def cli_actor(login: str) -> Actor:
    return Actor(name=f"cli:{login}"[:320], address="cli")


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_kind: str = "",
    target_id: object = "",
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        user_id=actor.user_id,
        actor=actor.name[:320],
        address=actor.address[:64],
        action=action[:64],
        target_kind=target_kind[:32],
        target_id=str(target_id)[:320],
        detail=dict(detail or {}),
    )
    session.add(entry)
    return entry


@dataclass(frozen=True, slots=True)
class Filters:
    actor: str = ""
    action: str = ""
    target_kind: str = ""
    target_id: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # keyset: the entries older than this one
    limit: int = PAGE


def entries(session: Session, filters: Filters) -> Sequence[AuditEntry]:
    """Newest first, at most `limit`, older than `before_id` when given."""
    query = select(AuditEntry)
    if filters.actor:
        query = query.where(AuditEntry.actor == filters.actor)
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    if filters.target_kind:
        query = query.where(AuditEntry.target_kind == filters.target_kind)
    if filters.target_id:
        query = query.where(AuditEntry.target_id == filters.target_id)
    if filters.since:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until:
        query = query.where(AuditEntry.at < filters.until)
    if filters.before_id:
        query = query.where(AuditEntry.id < filters.before_id)
    query = query.order_by(AuditEntry.id.desc()).limit(max(1, min(filters.limit, 500)))
    return session.scalars(query).all()
