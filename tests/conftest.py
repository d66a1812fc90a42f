"""Shared fixtures: the store on SQLite and on the real PostgreSQL, and service checks.

In CI (CI=true) a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
import subprocess
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


# Whether this process's PostgreSQL database may hold rows a test committed: a test that
# commits wipes it first; a test whose session is rolled back leaves nothing behind.
_pg_dirty = True


def _clean_postgres(url: str) -> None:
    global _pg_dirty
    if _pg_dirty:
        truncate_all(url)
        _pg_dirty = False


def _rolls_back(item: pytest.Item) -> bool:
    """True when only the `session` fixture reaches the database: no other fixture, and not
    the test itself, takes `db_url` or `pg_url` (to hand the URL to code that opens its own
    sessions, a web app, a command, a thread or a process, which must see committed rows)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None or "session" not in info.names_closure:
        return False
    if _hands_the_store_on(item):
        return False
    if {"db_url", "pg_url"} & set(info.argnames):
        return False
    for name, defs in info.name2fixturedefs.items():
        if name not in ("session", "db_url") and any(
            {"db_url", "pg_url"} & set(d.argnames) for d in defs
        ):
            return False
    return True


# What, written anywhere in a test's module, may open sessions of its own on the store.
_OTHER_SESSIONS = (
    "create_app", "TestClient", "main(", "run_digest", "session_factory", "session_scope",
    "sessionmaker", "unit_of_work", "Thread", "Pool", "database_url",
)  # fmt: skip


def _hands_the_store_on(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        return True
    return any(name in source for name in _OTHER_SESSIONS)


@pytest.fixture(autouse=True)
def _pg_commits(request: pytest.FixtureRequest) -> None:
    """A test on this process's PostgreSQL database outside `db_url` commits as it likes."""
    global _pg_dirty
    if "pg_url" in request.fixturenames:
        _pg_dirty = True


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store on both back ends: tests using it run twice. On PostgreSQL a test that only
    uses `session` runs in a transaction rolled back after it; any other starts on a wiped
    database and may commit."""
    global _pg_dirty
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("pg_url")
        _clean_postgres(url)
        if not _rolls_back(request.node):
            _pg_dirty = True
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    reset_settings()
    return url


@pytest.fixture
def session(db_url: str, request: pytest.FixtureRequest) -> Iterator[Session]:
    """A session on the store. On PostgreSQL, for a test that reaches the database only
    through it, SQLAlchemy's "join a session into an external transaction" recipe: the
    session runs in a transaction of the connection, its commits are savepoints, and the
    transaction is rolled back after the test (no wiping of every table). Otherwise the test
    commits what it needs and the next test that commits wipes it."""
    if db_url.startswith("postgresql") and _rolls_back(request.node):
        conn = get_engine(db_url).connect()
        outer = conn.begin()
        s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield s
        finally:
            s.close()
            outer.rollback()
            conn.close()
        return
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


@pytest.fixture
def report_counts(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a test's counts (deliveries, duplicates, in flight ...) for the run's summary:
    `pytest -q` hides a passing test's output, and CI's log should show the crash figures.
    Kept in the test's report (user_properties), which pytest-xdist hands to the main
    process that writes the summary."""

    def report(line: str) -> None:
        request.node.user_properties.append(("counts", line.strip()))

    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for key, value in getattr(report, "user_properties", ())
        if key == "counts"
    ]
    if lines:
        terminalreporter.section("counts reported by tests")
        for line in lines:
            terminalreporter.write_line(line)


# The markers pyproject declares, put on each test by the fixtures it uses and the helpers
# its body calls (so a new test is marked without thinking of it); a test reaching a service
# some other way says so with its own mark. `make test-fast` runs the tests marked with none.
_NEEDS = {"pg_url": "postgres", "redis_url": "redis"}
_SERVICE_FIXTURES = {"browser"}
# Starting `digest` costs seconds of CPU (its imports) per process, workers more.
_PROCESS_CALLS = ("run_digest(", "WorkerProcess(", "queue_send(", "[DIGEST", "RedisServer(")


def _starts_processes(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    try:
        source = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return False
    return any(call in source for call in _PROCESS_CALLS)


def _runs_workers(item: pytest.Item) -> bool:
    """Celery workers, crash tests and CPU hogs: heavy, and their leases and waits are
    sized for a machine busy with one of them."""
    function = getattr(item, "function", None)
    try:
        source = inspect.getsource(function) if function is not None else ""
    except (OSError, TypeError):
        return False
    return any(call in source for call in ("WorkerProcess(", "cpu_hogs(", "RedisServer("))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        marks = {mark for fixture, mark in _NEEDS.items() if fixture in names}
        if callspec is not None and "postgres" in callspec.params.values():
            marks.add("postgres")
        if marks or names & _SERVICE_FIXTURES or item.get_closest_marker("postgres"):
            marks.add("service")
        if _starts_processes(item):
            marks.add("process")
        for mark in sorted(marks):
            item.add_marker(mark)
        if _runs_workers(item):
            # pytest-xdist (--dist loadgroup): one such test at a time, on one xdist worker.
            item.add_marker(pytest.mark.xdist_group("workers"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with openssl for the module."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
