"""Query counts pinned, as DESIGN.md promises: the overview queries, the editor's pages and the
delivery ledger's claim run a fixed number of statements however many lists, issues, sources,
subscribers or rows there are. Statements are counted with a SQLAlchemy event listener on the
engine; a pin that breaks means a query per row (an N+1) crept in, or a page gained a query:
look at the statements the failure prints before raising a pin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, event, update
from sqlalchemy.orm import Session

from digest import overview
from digest.config import get_settings, reset_settings
from digest.db import get_engine
from digest.delivery.ledger import claim, plan_deliveries
from digest.issues.compose import compose_issue
from digest.models import Delivery, Issue, Item, Role, Source, SuppressionReason, utcnow
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import add_subscriber
from digest.subscribers.suppression import suppress
from digest.subscribers.topics import define_topic
from digest.web.app import create_app
from tests.accounts import grant, signed_in


@contextmanager
def statements(engine: Engine | Connection) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block, in order."""
    seen: list[str] = []

    def note(conn: object, cursor: object, statement: str, *args: object) -> None:
        # The savepoints are the test's rolled-back transaction's, not the code's.
        if "SAVEPOINT" not in statement:
            seen.append(" ".join(statement.split())[:160])

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def add_lists(session: Session, first: int, count: int) -> list[int]:
    """`count` lists, each with a source of three items, four subscribers (one pending) and a
    composed draft; returns the issues' ids."""
    issue_ids = []
    now = utcnow()
    for n in range(first, first + count):
        lst = create_list(session, slug=f"list-{n}", name=f"List {n}", lookback_days=60)
        source = Source(name=f"Source {n}", url=f"https://s{n}.example.org/", kind="manual")
        session.add(source)
        session.flush()
        link_source(session, lst.id, source.id)
        for i in range(3):
            url = f"https://s{n}.example.org/{i}"
            session.add(
                Item(
                    source_id=source.id,
                    guid=f"{n}-{i}",
                    url=url,
                    canonical_url=url,
                    title=f"Story {n}.{i}",
                    summary_html="<p>s</p>",
                    summary_text="s",
                    published_at=now - timedelta(days=i + 1),
                )
            )
        for i in range(3):
            add_subscriber(session, lst.id, f"r{i}@l{n}.example.org")
        add_subscriber(session, lst.id, f"waiting@l{n}.example.org", status="pending")
        session.flush()
        issue = compose_issue(session, lst.id)
        assert issue is not None
        issue_ids.append(issue.id)
    session.commit()
    return issue_ids


def overview_counts(session: Session) -> dict[str, int]:
    engine = session.get_bind()  # a connection when the test runs in a rolled-back transaction
    settings = get_settings()
    calls = {
        "issue_rows": lambda: overview.issue_rows(session),
        "list_rows": lambda: overview.list_rows(session),
        "source_rows": lambda: overview.source_rows(session),
        "overdue_rows": lambda: overview.overdue_rows(session, settings),
    }
    counts = {}
    for name, call in calls.items():
        session.expire_all()  # nothing served from the identity map
        with statements(engine) as seen:
            call()
        counts[name] = len(seen)
    return counts


# Statements per call: issue_rows = issues + their lists + item counts + progress; list_rows =
# lists + subscription counts + source counts + latest issues + their lists + item counts +
# progress + drafts; source_rows = sources + item counts + list slugs; overdue_rows = scheduled
# issues + late scheduled sends.
OVERVIEW = {"issue_rows": 4, "list_rows": 8, "source_rows": 3, "overdue_rows": 2}


def test_overview_queries_are_a_fixed_handful_whatever_the_rows(session: Session) -> None:
    add_lists(session, 0, 1)
    one = overview_counts(session)
    add_lists(session, 1, 5)
    six = overview_counts(session)
    assert one == six == OVERVIEW, f"1 list: {one}; 6 lists: {six}"


# Each page's own statements, plus two for the signed-in session (digest.accounts.sessions).
# /editor/issues: 8 since it also looks for late scheduled sends (overdue_rows).
EDITOR_PAGES = {"/editor/issues": 8, "/editor/lists": 10, "/editor/sources": 5}


def page_counts(client: TestClient, engine: Engine, issue_id: int) -> dict[str, int]:
    counts = {}
    for path in [*EDITOR_PAGES, f"/editor/issues/{issue_id}"]:
        with statements(engine) as seen:
            response = client.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        counts[path.replace(str(issue_id), "ID")] = len(seen)
    return counts


def test_editor_pages_run_a_fixed_number_of_statements(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_settings()
    engine = get_engine(db_url)
    (first,) = add_lists(session, 0, 1)
    grant(session, Role.VIEWER)
    with signed_in(TestClient(create_app(), follow_redirects=False), Role.VIEWER) as client:
        client.get("/editor/issues")  # the app's first request after signing in
        one = page_counts(client, engine, first)
        add_lists(session, 1, 5)
        six = page_counts(client, engine, first)
    assert one == six, f"1 list: {one}; 6 lists: {six}"
    assert one == {**EDITOR_PAGES, "/editor/issues/ID": ISSUE_PAGE}, one


# The issue (read three times: the page, the preview render and its context), its list, its
# issue items, their items and sources (the render's), the items joined for the page, the
# delivery progress, its variants with their readers and the waves to come, and the session.
ISSUE_PAGE = 15


def test_a_claim_is_two_statements_plus_one_per_reason_to_skip(session: Session) -> None:
    """A claim takes expired leases, then due rows, each in one UPDATE ... RETURNING that
    also reads the subscription's status and the suppression list; rows to skip are settled
    in one UPDATE per reason. Never a statement per row."""
    (issue_id,) = add_lists(session, 0, 1)
    issue = session.get(Issue, issue_id)
    assert issue is not None
    for i in range(3, 200):
        add_subscriber(session, issue.list_id, f"r{i}@l0.example.org")
    session.commit()
    assert plan_deliveries(session, issue_id) == 200
    session.commit()
    engine = session.get_bind()

    with statements(engine) as plain:
        first = claim(session, issue_id, "lease-a", 80, lease_seconds=60)
    session.commit()
    assert len(first.recipients) == 80 and len(plain) == 2, plain

    # Some leases expired, some of their addresses suppressed since: still a handful of
    # statements for the 80 rows of the next claim.
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_([r.delivery_id for r in first.recipients[:30]]))
        .values(lease_until=utcnow() - timedelta(seconds=1))
    )
    for gone in first.recipients[:10]:  # among the expired: the next claim takes them
        suppress(session, gone.email, SuppressionReason.COMPLAINT)
    session.commit()
    with statements(engine) as mixed:
        second = claim(session, issue_id, "lease-b", 80, lease_seconds=60)
    session.commit()
    assert second.skipped == 10 and len(second.recipients) == 70
    assert len(mixed) == 3, mixed  # two claims, one UPDATE for the suppressed


def test_a_subscriber_page_runs_the_same_statements_however_many_lists_they_are_on(
    session: Session, db_url: str
) -> None:
    """The admin's page of one person: one topics query for all their lists."""
    reset_settings()
    engine = get_engine(db_url)
    lists = [create_list(session, slug=f"l{n}", name=f"L{n}") for n in range(5)]
    for lst in lists:
        define_topic(session, lst, "ferries", "Ferries", keywords=["ferry"])
    one = add_subscriber(session, lists[0].id, "one@example.org").subscriber_id
    many = add_subscriber(session, lists[0].id, "many@example.org").subscriber_id
    for lst in lists[1:]:
        add_subscriber(session, lst.id, "many@example.org")
    grant(session, Role.ADMIN)
    session.commit()
    counts = {}
    with signed_in(TestClient(create_app(), follow_redirects=False), Role.ADMIN) as client:
        client.get("/editor/subscribers")  # the app's first request after signing in
        for who, subscriber_id in (("one list", one), ("five lists", many)):
            with statements(engine) as seen:
                response = client.get(f"/editor/subscribers/{subscriber_id}")
            assert response.status_code == 200, response.text[:300]
            assert response.text.count("Ferries") >= (5 if who == "five lists" else 1)
            counts[who] = seen
    assert len(counts["one list"]) == len(counts["five lists"]), counts
