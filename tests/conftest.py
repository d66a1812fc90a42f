"""Shared fixtures: the store on SQLite and on the real PostgreSQL, and service checks.

In CI (CI=true) a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from digest import models  # noqa: F401  (registers the tables)
from digest.config import reset_settings
from digest.db import Base, dispose_engines, get_engine, session_factory

PG_ADMIN_URL = os.environ.get(
    "DIGEST_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PG_DB = f"digest_test_{os.getpid()}"


def _redis_url() -> str:
    """DIGEST_TEST_REDIS names the Redis db of the run; under pytest-xdist worker gwN takes
    the db N below it (gw0 that db itself), so workers that flush theirs or run Celery queues
    in it never meet."""
    base = os.environ.get("DIGEST_TEST_REDIS", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or 0)
    if not index:
        return base
    prefix, _, db = base.rpartition("/")
    if int(db) - index < 0:
        raise RuntimeError(f"DIGEST_TEST_REDIS {base}: no db {int(db) - index} for {worker}")
    return f"{prefix}/{int(db) - index}"


REDIS_URL = _redis_url()
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Outside development mode nothing signs a link without a key: test modules that build a
# message at import (before any fixture) sign with the tests' key. Each test gets it again
# from _isolated_settings.
os.environ.setdefault("DIGEST_SECRET_KEY", "test-secret")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI must run the real-service tests)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test gets its own settings; nothing leaks from the developer's .env or DIGEST_*."""
    for key in list(os.environ):
        if key.startswith("DIGEST_") and not key.startswith("DIGEST_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "test-secret")
    # The tests' HTTP servers listen on 127.0.0.1; tests of the address policy unset this.
    monkeypatch.setenv("DIGEST_ALLOW_PRIVATE_FETCH", "1")
    monkeypatch.setenv("DIGEST_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield
    reset_settings()


@contextmanager
def scratch_postgres(name: str) -> Iterator[str]:
    """An empty database of its own on the real PostgreSQL server, dropped after."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    admin = get_engine(PG_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of our own on the real PostgreSQL server, with the schema, for this run."""
    with scratch_postgres(PG_DB) as url:
        Base.metadata.create_all(get_engine(url))
        yield url
        dispose_engines()


def truncate_all(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'digest.db'}"
    Base.metadata.create_all(get_engine(url))
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store on both back ends: tests using it run twice."""
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("pg_url")
        truncate_all(url)
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    reset_settings()
    return url


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the store; the test commits what it needs, the data is wiped per test."""
    s = session_factory(db_url)()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


_COUNTS = pytest.StashKey[list[str]]()


@pytest.fixture
def report_counts(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a test's counts (deliveries, duplicates, in flight ...) for the run's summary:
    `pytest -q` hides a passing test's output, and CI's log should show the crash figures."""
    lines = request.config.stash.setdefault(_COUNTS, [])

    def report(line: str) -> None:
        lines.append(f"{request.node.nodeid}: {line.strip()}")

    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_COUNTS, [])
    if lines:
        terminalreporter.section("counts reported by tests")
        for line in lines:
            terminalreporter.write_line(line)


# The markers pyproject declares, put on each test by the fixtures it uses (so a new test is
# marked without thinking of it): `make test-fast` runs what needs none of the services.
_NEEDS = {"pg_url": "postgres", "redis_url": "redis", "redis_server": "redis"}
_SERVICE_FIXTURES = {"browser", "smtp_sink"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        marks = {mark for fixture, mark in _NEEDS.items() if fixture in names}
        if callspec is not None and callspec.params.get("db_url") == "postgres":
            marks.add("postgres")
        if marks or names & _SERVICE_FIXTURES or item.get_closest_marker("postgres"):
            marks.add("service")
        for mark in sorted(marks):
            item.add_marker(mark)
