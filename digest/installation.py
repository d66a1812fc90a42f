"""This installation's own random part of every Message-ID, made once per database."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.db import is_postgres
from digest.models import Installation, utcnow


def message_id_part(session: Session) -> str:
    """The random part (12 hex digits) of this database's Message-IDs, made on first use;
    safe under concurrent first uses (one row, id 1)."""
    found = session.scalar(select(Installation.message_id_part).where(Installation.id == 1))
    if found:
        return found
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    session.execute(
        insert(Installation)
        .values(id=1, message_id_part=secrets.token_hex(6), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return str(session.scalar(select(Installation.message_id_part).where(Installation.id == 1)))
