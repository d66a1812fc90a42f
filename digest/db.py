"""DeclarativeBase and lazily made, per-process engines and session factories.

The database URL is always the caller's (its settings' `database_url`): nothing here reads
the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The largest values of the store's integer columns: INTEGER (ids of sources, lists and issues;
# positions, counts) and BIGINT (every other id). A number past them in a URL or a form is no
# row of ours, and PostgreSQL or the SQLite driver raise on it instead of finding nothing.
MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# One engine per (process, url): a forked Celery worker must not reuse its parent's pool.
_engines: dict[tuple[int, str], Engine] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def get_engine(url: str) -> Engine:
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        _engines[key] = engine
    return engine


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A unit of work for an edge (command, task, request): commit on success, else roll back."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally (escape="\\")."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def ping(session: Session) -> None:
    """One round trip to the database; raises when it cannot be reached."""
    session.execute(text("SELECT 1"))
