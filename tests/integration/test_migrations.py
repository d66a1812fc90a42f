"""The Alembic migrations build the schema the models describe, on SQLite and PostgreSQL."""

from pathlib import Path

from alembic import command
from sqlalchemy import insert, text

from digest.db import get_engine
from digest.migrate import alembic_config, upgrade
from digest.models import Issue, MailingList
from tests.conftest import PG_ADMIN_URL, require_service


def _assert_matches_models(url: str) -> None:
    upgrade(url)
    # `alembic check` fails when the models have changes no migration covers.
    command.check(alembic_config(url))


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    _assert_matches_models(f"sqlite:///{tmp_path / 'm.db'}")


def test_postgres_schema_matches_models() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = "digest_migrations_test"
    admin = get_engine(PG_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        _assert_matches_models(url)
        upgrade(url)  # a second upgrade is a no-op
    finally:
        get_engine(url).dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    _assert_matches_models(url)


def test_issues_rendered_before_0004_keep_their_legacy_slot_marker(tmp_path: Path) -> None:
    """Their stored copies spell slots "[[digest:field]]": the web copy still finds them."""
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    command.upgrade(alembic_config(url), "0003")
    with get_engine(url).begin() as conn:  # core inserts: the models' Python defaults apply
        conn.execute(insert(MailingList).values(id=1, slug="l", name="L"))
        for number, html in ((1, "<p>[[digest:email]]</p>"), (2, None)):
            conn.execute(insert(Issue).values(list_id=1, number=number, subject="s", html=html))
    upgrade(url)
    with get_engine(url).connect() as conn:
        markers = conn.execute(text("SELECT number, slot_marker FROM issues ORDER BY number"))
        assert markers.all() == [(1, "digest"), (2, None)]
