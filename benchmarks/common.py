"""What the benchmarks share: a scratch PostgreSQL database and fast bulk loading with COPY."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from sqlalchemy import text

from digest import models  # noqa: F401  (registers the tables)
from digest.db import Base, get_engine

ADMIN = os.environ.get("DIGEST_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def database_url(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + f"/{name}"


def kept_database(name: str) -> str | None:
    """The url of database `name` if a run with `keep` left it there, else None."""
    with get_engine(ADMIN).connect() as conn:
        found = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    return database_url(name) if found else None


T = TypeVar("T")


@contextmanager
def loaded_database(
    name: str,
    keep: bool,
    reuse: Callable[[str], T | None],
    load: Callable[[str], T],
) -> Iterator[tuple[str, T, float | None]]:
    """(url, what the data is, seconds the load took) of a database holding a benchmark's data.
    With `keep` the database outlives the run, and a later run with `keep` reuses it when
    `reuse(url)` recognises its data (load seconds None): the models' indexes it lacks are
    made first and it is analysed, so an index added since is measured too. Else a scratch
    database is loaded by `load(url)`."""
    url = kept_database(name) if keep else None
    found = reuse(url) if url is not None else None
    if url is not None and found is not None:
        with get_engine(url).begin() as conn:
            for table in Base.metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
        yield url, found, None
        return
    with scratch_database(name, keep=keep) as url:
        started = time.perf_counter()
        data = load(url)
        yield url, data, time.perf_counter() - started


@contextmanager
def scratch_database(name: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh database with the schema; dropped afterwards unless `keep` (a benchmark that
    loads a million rows can then measure again without loading them: see kept_database)."""
    admin = get_engine(ADMIN)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = database_url(name)
    Base.metadata.create_all(get_engine(url))
    try:
        yield url
    finally:
        get_engine(url).dispose()
        if not keep:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def load_subscribers(url: str, list_id: int, count: int) -> float:
    """COPY `count` confirmed subscribers of a list in; returns seconds taken."""
    started = time.perf_counter()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY subscribers (id, email, name, attributes, created_at) FROM STDIN"
        ) as cp:
            for i in range(1, count + 1):
                cp.write_row((i, f"reader{i}@example.org", f"Reader {i}", "{}", "2024-01-01"))
        with cur.copy(
            "COPY subscriptions (id, list_id, subscriber_id, status, preferences, created_at)"
            " FROM STDIN"
        ) as cp:
            for i in range(1, count + 1):
                cp.write_row((i, list_id, i, "confirmed", "{}", "2024-01-01"))
        cur.execute("SELECT setval('subscribers_id_seq', %s)", (count,))
        cur.execute("SELECT setval('subscriptions_id_seq', %s)", (count,))
        cur.execute("ANALYZE subscribers; ANALYZE subscriptions")
    return time.perf_counter() - started
