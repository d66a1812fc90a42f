"""A scheduled issue until its issue exists: cut off at its fire time, retried with back-off
when composing fails, claimed again when its attempt is lost, shown while overdue, and never
made twice (SQLite and PostgreSQL; races on PostgreSQL with threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.issues import lifecycle
from digest.issues.compose import compose_issue
from digest.issues.schedule import record_fire
from digest.models import Issue, IssueItem, Item, ScheduledIssue, Source, utcnow
from digest.scheduled import (
    LOST,
    Claim,
    claim_scheduled,
    compose_step,
    fail_scheduled,
    overdue_scheduled,
    run_scheduled,
)
from digest.subscribers.lists import create_list, link_source
from digest.web.app import create_app
from tests.accounts import grant, signed_in
from tests.conftest import truncate_all
from tests.fixtures.sources.server import Page, serving

T = TypeVar("T")
LEASE = 300


def news(session: Session, fire: datetime) -> tuple[int, int, dict[str, int]]:
    """A list with a hand-fed source (nothing to fetch), items around `fire`, and the fire
    recorded: (list id, scheduled issue id, item ids by name)."""
    lst = create_list(session, slug="news", name="News", lookback_days=30)
    source = Source(name="Desk", url="manual:desk", kind="manual")
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    seen = fire + timedelta(minutes=20)  # collected just after the fire
    when = {
        "before": fire - timedelta(minutes=10),
        "after": fire + timedelta(minutes=10),
        "undated": None,
    }
    ids = {}
    for name, published in when.items():
        item = Item(
            source_id=source.id,
            guid=name,
            url=f"https://ex.org/{name}",
            canonical_url=f"https://ex.org/{name}",
            title=f"The {name} story",
            published_at=published,
            first_seen_at=seen,
        )
        session.add(item)
        session.flush()
        ids[name] = item.id
    record_id = record_fire(session, lst.id, fire, fire)
    assert record_id is not None
    session.commit()
    return lst.id, record_id, ids


def issue_items(session: Session) -> dict[int, list[int]]:
    session.expire_all()
    found: dict[int, list[int]] = {}
    for issue_id, item_id in session.execute(select(IssueItem.issue_id, IssueItem.item_id)):
        found.setdefault(issue_id, []).append(item_id)
    return {k: sorted(v) for k, v in found.items()}


def record(session: Session, record_id: int) -> ScheduledIssue:
    session.expire_all()
    return session.get_one(ScheduledIssue, record_id)


def factory_of(session: Session) -> sessionmaker[Session]:
    return sessionmaker(session.get_bind(), expire_on_commit=False)


def claim(factory: sessionmaker[Session], now: datetime, lease: float = LEASE) -> list[Claim]:
    with factory.begin() as session:
        return claim_scheduled(session, now, lease)


def test_an_issue_ends_at_its_scheduled_time(session: Session) -> None:
    fire = utcnow() - timedelta(hours=1)
    list_id, record_id, ids = news(session, fire)
    factory = factory_of(session)
    (attempt,) = claim(factory, utcnow())
    outcome = run_scheduled(factory, attempt, get_settings())
    assert outcome.state == "composed" and outcome.issue_id is not None
    # Published before the fire: in. After it: the next issue's. Undated: dated by when it
    # was seen, in (it was collected for this issue).
    assert issue_items(session) == {outcome.issue_id: sorted([ids["before"], ids["undated"]])}
    issue = session.get_one(Issue, outcome.issue_id)
    assert issue.period_end == fire
    settled = record(session, record_id)
    assert (settled.state, settled.issue_id, settled.attempts) == ("composed", issue.id, 1)
    lifecycle.mark_approved(session, issue.id)
    session.commit()
    following = compose_issue(session, list_id)
    assert following is not None
    assert [ii.item_id for ii in following.issue_items] == [ids["after"]]


def test_a_failed_attempt_is_overdue_then_retried_with_backoff(session: Session) -> None:
    list_id, record_id, _ids = news(session, utcnow() - timedelta(hours=1))
    hand = compose_issue(session, list_id)  # an editor's draft, still open at the fire
    assert hand is not None
    session.commit()
    factory = factory_of(session)

    (attempt,) = claim(factory, utcnow())
    outcome = run_scheduled(factory, attempt, get_settings())
    assert outcome.state == "failed"
    assert f"has a draft issue #{hand.number}" in (outcome.error or "")
    (row,) = overdue_scheduled(session, utcnow(), 0)
    assert (row.id, row.state, row.attempts) == (record_id, "failed", 1)
    assert "approve or discard it first" in row.error
    assert overdue_scheduled(session, utcnow(), 60) == []  # not overdue for an hour yet

    assert claim(factory, utcnow()) == []  # backing off: a minute after the first failure
    retry = record(session, record_id).next_attempt_at
    assert retry is not None and utcnow() < retry <= utcnow() + timedelta(seconds=61)
    lifecycle.discard_draft(session, hand.id)
    session.commit()
    (again,) = claim(factory, retry)
    outcome = run_scheduled(factory, again, get_settings())
    assert outcome.state == "composed"
    assert record(session, record_id).attempts == 2
    assert overdue_scheduled(session, utcnow(), 0) == []
    assert session.scalar(select(func.count()).select_from(Issue)) == 1


def test_a_lost_attempt_is_claimed_again_and_the_stale_one_makes_nothing(
    session: Session,
) -> None:
    _list_id, record_id, _ids = news(session, utcnow() - timedelta(hours=1))
    factory = factory_of(session)
    now = utcnow()
    (lost,) = claim(factory, now, lease=60)
    assert claim(factory, now + timedelta(seconds=59)) == []  # its lease still runs
    (row,) = overdue_scheduled(session, now + timedelta(seconds=30), 0)
    assert row.error.startswith("attempt 1 in progress")
    (row,) = overdue_scheduled(session, now + timedelta(seconds=61), 0)
    assert row.error == LOST

    (taken_over,) = claim(factory, now + timedelta(seconds=61))
    assert taken_over.token != lost.token
    assert (record(session, record_id).attempts, record(session, record_id).last_error) == (
        2,
        LOST,
    )
    # The lost attempt's tasks come back (a redelivered message): they change nothing.
    assert compose_step(factory, lost, get_settings()).state == "taken"
    with factory.begin() as tx:
        assert fail_scheduled(tx, lost, "late", utcnow(), 60) is False
    assert compose_step(factory, taken_over, get_settings()).state == "composed"
    assert (
        compose_step(factory, taken_over, get_settings()).state == "taken"
    )  # run twice: settled once
    assert session.scalar(select(func.count()).select_from(Issue)) == 1
    assert record(session, record_id).last_error is None


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException] = [RuntimeError("did not run")] * len(calls)

    def run(i: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # re-raised below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


def race_one_period(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        news(session, utcnow() - timedelta(hours=1))
    now = utcnow()
    claims = at_once(lambda: claim(factory, now), lambda: claim(factory, now))
    assert sorted(len(c) for c in claims) == [0, 1]
    (attempt,) = claims[0] or claims[1]
    outcomes = at_once(*[lambda: compose_step(factory, attempt, get_settings())] * 3)
    assert sorted(o.state for o in outcomes) == ["composed", "taken", "taken"]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 1


def test_concurrent_claims_and_attempts_make_one_issue(pg_url: str) -> None:
    """PostgreSQL, where workers run: two claims racing, then three runs of the same attempt
    racing (a task delivered three times): one claim, one issue; ten rounds."""
    for _ in range(10):
        truncate_all(pg_url)
        race_one_period(session_factory(pg_url))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`digest ARGS` through the real entry point: (exit code, stdout and stderr)."""
    from digest.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_digest_run_makes_the_due_issue_in_process(
    session: Session, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No broker: `digest run` (from cron) collects the list's feed, then composes up to the
    fire; `digest issues overdue` shows the fire until then, and nothing after."""
    monkeypatch.setenv("DIGEST_SCHEDULE_OVERDUE_MINUTES", "0")
    reset_settings()
    fire = utcnow().replace(second=0, microsecond=0) - timedelta(hours=1)
    before, after = fire - timedelta(minutes=2), fire + timedelta(minutes=2)
    feed = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>T</title><link>https://ex.org/"
        "</link><description>d</description>"
        + "".join(
            f"<item><title>{name}</title><link>https://ex.org/{name}</link>"
            f"<pubDate>{format_datetime(when.replace(tzinfo=UTC))}</pubDate></item>"
            for name, when in (("before", before), ("after", after))
        )
        + "</channel></rss>"
    )
    with serving() as server:
        lst = create_list(
            session, slug="news", name="News", schedule_cron=f"{fire.minute} {fire.hour} * * *"
        )
        lst.created_at, lst.schedule_checked_at = (
            fire - timedelta(days=1),
            fire - timedelta(minutes=1),
        )
        source = Source(name="Feed", url=server.add("/f.xml", Page(feed.encode())), kind="feed")
        session.add(source)
        session.flush()
        link_source(session, lst.id, source.id)
        record_fire(session, lst.id, fire, fire)  # as beat's tick would have
        session.commit()

        code, out = cli(capsys, "issues", "overdue")
        assert code == 1 and "news: due" in out and "not tried yet" in out, out
        code, out = cli(capsys, "run")
        assert code == 0, out
        assert "composed issue" in out and "collected 0 due sources" in out, out
        code, out = cli(capsys, "run")
        assert code == 0 and "composed" not in out, out
    assert cli(capsys, "issues", "overdue") == (0, "no scheduled issue is overdue\n")
    ((issue_id, items),) = issue_items(session).items()
    assert [session.get_one(Item, i).title for i in items] == ["before"]
    assert session.get_one(Issue, issue_id).period_end == fire


def test_the_editor_shows_overdue_issues_with_their_reason(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # db_url: the app reads the rows, committed, through its own sessions
    _list_id, record_id, _ids = news(session, utcnow() - timedelta(hours=2))
    failed = record(session, record_id)
    failed.state, failed.attempts = "failed", 3
    failed.created_at = utcnow() - timedelta(hours=2)  # due two hours ago, still no issue
    failed.last_error = "collecting its sources failed: <b>database</b> went away"
    failed.next_attempt_at = utcnow() + timedelta(minutes=4)
    session.commit()
    grant(session)
    with TestClient(create_app()) as client:
        signed_in(client)
        page = client.get("/editor/issues")
        assert page.status_code == 200
        assert "Scheduled issues overdue" in page.text
        assert "collecting its sources failed: &lt;b&gt;database&lt;/b&gt; went away" in page.text
        (row,) = client.get("/api/v1/scheduled/overdue").json()
        assert (row["id"], row["list_slug"], row["state"], row["attempts"]) == (
            record_id,
            "news",
            "failed",
            3,
        )
        assert row["error"] == failed.last_error and row["fire_at"].endswith("Z")
        failed.state = "composed"
        session.commit()
        assert "Scheduled issues overdue" not in client.get("/editor/issues").text
        assert client.get("/api/v1/scheduled/overdue").json() == []
