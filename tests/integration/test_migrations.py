"""The Alembic migrations build the schema the models describe, on SQLite and PostgreSQL."""

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, MetaData, Table, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from digest.config import get_settings
from digest.db import Base, get_engine, session_factory
from digest.migrate import alembic_config, upgrade
from digest.models import (
    Delivery,
    DeliveryStatus,
    Event,
    EventKind,
    Grouping,
    Issue,
    IssueStatus,
    Item,
    MailingList,
    ScheduledIssue,
    ScheduledState,
    SignupOutcome,
    SignupRequest,
    Source,
    SourceKind,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from digest.sources.collect import collect_sources
from digest.sources.guids import item_guid
from tests.conftest import PG_DB, scratch_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database for migrations to build, on both back ends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    # Named after this pytest process too: parallel runs (xdist, other checkouts) never meet.
    name = f"{PG_DB}_migrate_{request.node.name[-12:].strip('[]-')}"
    with scratch_postgres(name) as url:
        yield url


def _assert_matches_models(url: str) -> None:
    upgrade(url)
    # `alembic check` fails when the models have changes no migration covers.
    command.check(alembic_config(url))


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    _assert_matches_models(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_schema_matches_models() -> None:
    with scratch_postgres(f"{PG_DB}_migrations") as url:
        _assert_matches_models(url)
        upgrade(url)  # a second upgrade is a no-op


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    _assert_matches_models(url)


def _insert_as_of(conn: Connection, model: type[Base], **values: object) -> None:
    """A row with the columns the table has at this revision, the model's defaults filling in:
    a column added by a later migration must not break a test of an earlier one."""
    table = Table(model.__tablename__, MetaData(), autoload_with=conn)
    row = dict(values)
    for column in table.columns:
        default = model.__table__.columns[column.name].default
        if column.name not in row and default is not None and default.is_scalar:
            row[column.name] = default.arg
        elif column.name not in row and default is not None and default.is_callable:
            row[column.name] = default.arg(None)  # type: ignore[operator]
    conn.execute(table.insert().values(row))


def test_issues_rendered_before_0004_keep_their_legacy_slot_marker(tmp_path: Path) -> None:
    """Their stored copies spell slots "[[digest:field]]": the web copy still finds them."""
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    command.upgrade(alembic_config(url), "0003")
    with get_engine(url).begin() as conn:
        _insert_as_of(conn, MailingList, id=1, slug="l", name="L")
        for number, html in ((1, "<p>[[digest:email]]</p>"), (2, None)):
            _insert_as_of(conn, Issue, list_id=1, number=number, subject="s", html=html)
    upgrade(url)
    with get_engine(url).connect() as conn:
        markers = conn.execute(text("SELECT number, slot_marker FROM issues ORDER BY number"))
        assert markers.all() == [(1, "digest"), (2, None)]


# Each column of words: (table, column, the StrEnum its CHECK constraint holds to).
WORD_COLUMNS = (
    ("sources", "kind", SourceKind),
    ("lists", "grouping", Grouping),
    ("subscriptions", "status", SubscriptionStatus),
    ("issues", "status", IssueStatus),
    ("deliveries", "status", DeliveryStatus),
    ("suppressions", "reason", SuppressionReason),
    ("events", "kind", EventKind),
    ("signup_requests", "outcome", SignupOutcome),
    ("scheduled_issues", "state", ScheduledState),
)


def _one_row_each(url: str) -> None:
    """A row in every table with a column of words, each word valid."""
    with session_factory(url).begin() as session:
        lst = MailingList(slug="l", name="L")
        source = Source(name="s", url="https://news.example.org/feed", kind=SourceKind.FEED)
        subscriber = Subscriber(email="a@example.org")
        session.add_all([lst, source, subscriber])
        session.flush()
        subscription = Subscription(list_id=lst.id, subscriber_id=subscriber.id)
        issue = Issue(list_id=lst.id, number=1, subject="s")
        session.add_all([subscription, issue])
        session.flush()
        session.add_all(
            [
                Delivery(
                    issue_id=issue.id,
                    subscriber_id=subscriber.id,
                    subscription_id=subscription.id,
                    email=subscriber.email,
                ),
                Suppression(email="b@example.org", reason=SuppressionReason.MANUAL),
                Event(kind=EventKind.SIGNUP, list_id=lst.id),
                SignupRequest(list_id=lst.id, email="c@example.org", outcome=SignupOutcome.BOT),
                ScheduledIssue(list_id=lst.id, fire_at=datetime(2024, 3, 1, 9)),
            ]
        )


def test_every_status_column_refuses_a_word_its_enum_lacks(empty_url: str) -> None:
    """After the migrations, as with the models' own schema: each column of words holds its
    StrEnum's words and no other, so a misspelt status written by raw SQL (an old script, a
    hand-made fix) is refused by the database itself."""
    upgrade(empty_url)
    engine = get_engine(empty_url)
    _one_row_each(empty_url)
    for table, column, enum in WORD_COLUMNS:
        (check,) = [
            c["sqltext"]
            for c in inspect(engine).get_check_constraints(table)
            if c["name"] == f"ck_{table}_{column}"
        ]
        assert set(re.findall(r"'([a-z_]+)'", check)) == {w.value for w in enum}, check
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET {column} = 'misspelt'"))


# A listing page whose items have no link: their guids digest their title and date.
LISTING = b"""<html><body>
<div class="news"><h3>Cooperative week opens in Lyon</h3>
  <span class="d">21 February 2024</span></div>
<div class="news"><h3>Call for papers on the just transition</h3>
  <span class="d">5 Feb 2024</span></div>
</body></html>"""
SELECTORS = {"item": "div.news", "title": "h3", "date": ".d"}
STORED = (
    ("Cooperative week opens in Lyon", datetime(2024, 2, 21)),
    ("Call for papers on the just transition", datetime(2024, 2, 5)),
)


def _listing_guid_before_0006(title: str, published: datetime) -> str:
    """How a listing page spelled a title-and-date guid before 0006 (str() of the date)."""
    stamp = str(published.replace(tzinfo=UTC))
    return "sha1:" + hashlib.sha1(f"{title}\n{stamp}".encode()).hexdigest()


def test_listing_items_stored_before_0006_are_found_again_after_it(
    empty_url: str, tmp_path: Path
) -> None:
    page = tmp_path / "news.html"
    page.write_bytes(LISTING)
    command.upgrade(alembic_config(empty_url), "0005")  # the revision before 0006
    with get_engine(empty_url).begin() as conn:
        _insert_as_of(
            conn,
            Source,
            id=1,
            name="News page",
            url=page.as_uri(),
            kind="html",
            selectors=SELECTORS,
        )
        for n, (title, published) in enumerate(STORED, 1):
            _insert_as_of(
                conn,
                Item,
                id=n,
                source_id=1,
                guid=_listing_guid_before_0006(title, published),
                title=title,
                published_at=published,
                first_seen_at=datetime(2024, 2, 22),
            )
        # A feed's item digested the ISO way all along: the migration leaves it be.
        feed_guid = item_guid(None, None, "From a feed", datetime(2024, 2, 1, tzinfo=UTC))
        _insert_as_of(
            conn,
            Item,
            id=3,
            source_id=1,
            guid=feed_guid,
            title="From a feed",
            published_at=datetime(2024, 2, 1),
            first_seen_at=datetime(2024, 2, 22),
        )
    upgrade(empty_url)

    with session_factory(empty_url)() as session:
        guids = dict(session.execute(select(Item.id, Item.guid)).all())
        assert guids == {
            1: item_guid(None, None, STORED[0][0], STORED[0][1].replace(tzinfo=UTC)),
            2: item_guid(None, None, STORED[1][0], STORED[1][1].replace(tzinfo=UTC)),
            3: feed_guid,
        }
    # The page read again after the upgrade: the same two items, nothing new.
    (result,) = collect_sources(
        session_factory(empty_url), [1], datetime(2024, 3, 1), settings=get_settings()
    )
    assert result.error is None and (result.new, result.updated) == (0, 0)
    with session_factory(empty_url)() as session:
        assert session.scalar(select(func.count(Item.id))) == 3


def test_deliveries_without_a_next_attempt_get_one_before_it_becomes_not_null(
    empty_url: str,
) -> None:
    """0015: a pending row planned before every delivery had its moment is due at once (the
    claim's old `IS NULL` case); a settled one takes when it was due or sent."""
    command.upgrade(alembic_config(empty_url), "0013")
    sent, due = datetime(2024, 3, 1, 9), datetime(2024, 3, 2, 9)
    with get_engine(empty_url).begin() as conn:
        _insert_as_of(conn, MailingList, id=1, slug="l", name="L")
        _insert_as_of(conn, Issue, id=1, list_id=1, number=1, subject="s")
        for n, status, sent_at, due_at in (
            (1, "pending", None, None),
            (2, "sent", sent, None),
            (3, "pending", None, due),
        ):
            _insert_as_of(
                conn, Delivery, id=n, issue_id=1, subscriber_id=n, subscription_id=n,
                email=f"p{n}@example.org", status=status, next_attempt_at=None,
                sent_at=sent_at, due_at=due_at,
            )  # fmt: skip
    before = datetime.now(UTC).replace(tzinfo=None)
    upgrade(empty_url)
    with session_factory(empty_url)() as session:
        got = dict(session.execute(select(Delivery.id, Delivery.next_attempt_at)).all())
    assert got[2] == sent and got[3] == due
    assert before - timedelta(seconds=1) <= got[1] <= datetime.now(UTC).replace(tzinfo=None)
    with pytest.raises(IntegrityError), get_engine(empty_url).begin() as conn:
        conn.execute(text("UPDATE deliveries SET next_attempt_at = NULL WHERE id = 1"))
