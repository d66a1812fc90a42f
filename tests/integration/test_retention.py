"""Retention removes exactly what is old, keeps its counts as per-issue totals, and runs
during a real send (PostgreSQL, SMTP on 127.0.0.1) without touching a row of that send."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import session_factory, session_scope
from digest.delivery.send import send_issue_inline
from digest.delivery.smtp import SmtpTransport
from digest.models import (
    Delivery,
    Event,
    EventKind,
    Issue,
    IssueStatus,
    utcnow,
)
from digest.pipeline import start_sending
from digest.retention import issue_totals, prune
from digest.subscribers.lists import create_list
from tests.conftest import truncate_all
from tests.crash_issue import issue_state, make_issue
from tests.processes import wait_until
from tests.smtp_server import RecordingHandler, SMTPServer

MONTH = timedelta(days=31)
OLD_MIX = {"sent": 1500, "failed": 30, "skipped": 20}


def _issue(
    session: Session, list_id: int, number: int, status: IssueStatus, sent_at: datetime | None
) -> int:
    issue = Issue(
        list_id=list_id,
        number=number,
        status=status,
        subject=f"Issue {number}",
        created_at=sent_at or utcnow() - 15 * MONTH,
        sent_at=sent_at,
    )
    session.add(issue)
    session.flush()
    return issue.id


def _deliveries(session: Session, issue_id: int, mix: dict[str, int]) -> None:
    rows = []
    n = 0
    for status, count in mix.items():
        for _ in range(count):
            n += 1
            rows.append(
                {
                    "issue_id": issue_id,
                    "subscriber_id": n,
                    "subscription_id": n,
                    "email": f"old{n}@example.org",
                    "name": "",
                    "status": status,
                    "attempts": 1,
                }
            )
    session.execute(insert(Delivery), rows)


def _events(session: Session, issue_id: int | None, kind: EventKind, n: int, at: datetime) -> None:
    for _ in range(n):
        session.add(Event(kind=kind, issue_id=issue_id, created_at=at, detail={}))


def _history(url: str, list_id: int) -> dict[str, int]:
    """Two old sent issues, an old cancelled one, a recent one, an old one still paused
    (never finished: kept), and events old and new."""
    now = utcnow()
    with session_scope(url) as session:
        ids = {
            "old": _issue(session, list_id, 101, IssueStatus.SENT, now - 14 * MONTH),
            "older": _issue(session, list_id, 102, IssueStatus.SENT, now - 30 * MONTH),
            "cancelled": _issue(session, list_id, 103, IssueStatus.CANCELLED, None),
            "recent": _issue(session, list_id, 104, IssueStatus.SENT, now - 2 * MONTH),
            "paused": _issue(session, list_id, 105, IssueStatus.PAUSED, None),
        }
        _deliveries(session, ids["old"], OLD_MIX)
        _deliveries(session, ids["older"], OLD_MIX)
        _deliveries(session, ids["cancelled"], {"sent": 40, "pending": 60})
        _deliveries(session, ids["recent"], OLD_MIX)
        _deliveries(session, ids["paused"], {"sent": 10, "pending": 90})
        _events(session, ids["old"], EventKind.BOUNCED, 7, now - 14 * MONTH)
        _events(session, ids["old"], EventKind.COMPLAINED, 2, now - 14 * MONTH)
        _events(session, ids["recent"], EventKind.BOUNCED, 5, now - 2 * MONTH)
        # Consent records are kept, however old.
        _events(session, None, EventKind.SUBSCRIBED, 4, now - 20 * MONTH)
        _events(session, ids["old"], EventKind.UNSUBSCRIBED, 3, now - 14 * MONTH)
    return ids


def _rows(url: str, issue_id: int) -> Counter[str]:
    with session_scope(url) as session:
        found = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        ).all()
    return Counter({str(status): n for status, n in found})


def _event_kinds(url: str, issue_id: int | None) -> Counter[str]:
    with session_scope(url) as session:
        where = Event.issue_id.is_(None) if issue_id is None else Event.issue_id == issue_id
        return Counter(str(k) for k in session.scalars(select(Event.kind).where(where)))


def _check_history(url: str, ids: dict[str, int], issueless: Counter[str]) -> None:
    with session_scope(url) as session:
        totals = {name: issue_totals(session, issue_id) for name, issue_id in ids.items()}
    for name in ("old", "older"):
        assert _rows(url, ids[name]) == Counter()
        assert totals[name] == {
            **{("delivery", s): n for s, n in OLD_MIX.items()},
            **({("event", "bounced"): 7, ("event", "complained"): 2} if name == "old" else {}),
        }
    assert _rows(url, ids["cancelled"]) == Counter()
    assert totals["cancelled"] == {("delivery", "sent"): 40, ("delivery", "pending"): 60}
    # What is not old, or not over, is untouched and has no totals.
    assert _rows(url, ids["recent"]) == Counter(OLD_MIX)
    assert _rows(url, ids["paused"]) == Counter({"sent": 10, "pending": 90})
    assert totals["recent"] == totals["paused"] == {}
    assert _event_kinds(url, ids["old"]) == Counter({"unsubscribed": 3})
    assert _event_kinds(url, ids["recent"]) == Counter({"bounced": 5})
    assert _event_kinds(url, None) == issueless  # as before, the 4 old ones included


def test_retention_removes_exactly_what_is_old(db_url: str) -> None:
    with session_scope(db_url) as session:
        list_id = create_list(session, slug="news", name="News").id
    ids = _history(db_url, list_id)
    issueless = _event_kinds(db_url, None)
    assert issueless["subscribed"] == 4
    sf = session_factory(db_url)
    first = prune(sf, months=13, chunk=128)
    assert (first.issues, first.deliveries, first.events) == (3, 3200, 9)
    _check_history(db_url, ids, issueless)
    # Again: nothing left to remove, the totals do not double.
    again = prune(sf, months=13, chunk=128)
    assert (again.deliveries, again.events) == (0, 0)
    _check_history(db_url, ids, issueless)
    with pytest.raises(ValueError):
        prune(sf, months=0)


RECIPIENTS = 3000
FIRST_BATCH = 100


def test_retention_during_a_send_loses_no_row_of_it(pg_url: str) -> None:
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    with session_scope(pg_url) as session:
        list_id = session.scalar(select(Issue.list_id).where(Issue.id == issue_id))
        start_sending(session, issue_id)
    assert list_id is not None
    ids = _history(pg_url, list_id)
    issueless = _event_kinds(pg_url, None)

    # The relay takes the first batch, then holds every recipient until retention has run:
    # retention runs while the issue is sending however fast or slow the machine is.
    retention_done = threading.Event()
    answered = itertools.count()

    def held(_: str) -> None:
        if next(answered) >= FIRST_BATCH:
            retention_done.wait(120)
        return None

    settings = Settings(
        database_url=pg_url, transport="smtp", smtp_host="127.0.0.1", secret_key="test-secret"
    )
    sf = session_factory(pg_url)
    with SMTPServer(RecordingHandler(reply=held)) as smtp:
        transport = SmtpTransport.from_settings(
            settings.model_copy(update={"smtp_port": smtp.port})
        )
        failures: list[BaseException] = []

        def send() -> None:
            try:
                send_issue_inline(sf, issue_id, transport, settings, size=FIRST_BATCH)
            except BaseException as exc:  # reported by the test below
                failures.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_until(lambda: _rows(pg_url, issue_id)["sent"] > 0, 60, 0.05, "the send to start")
            done = prune(sf, months=13, chunk=100)
            still = issue_state(pg_url, issue_id)
        finally:
            retention_done.set()
            sender.join(300)
            assert not sender.is_alive(), "the send did not finish"
            transport.close()
    assert not failures, failures
    assert (done.issues, done.deliveries, done.events) == (3, 3200, 9)
    # Retention ran while the issue was still sending.
    assert still[0] == "sending" and still[1].sent < RECIPIENTS, still
    _check_history(pg_url, ids, issueless)
    # Every row of the send is there, sent once; retention recorded nothing for it.
    assert _rows(pg_url, issue_id) == Counter({"sent": RECIPIENTS})
    assert Counter(r for m in smtp.messages for r in m.rcpt_tos).most_common(1)[0][1] == 1
    assert len(smtp.messages) == RECIPIENTS
    with session_scope(pg_url) as session:
        assert issue_totals(session, issue_id) == {}
        assert session.scalar(select(Issue.status).where(Issue.id == issue_id)) == "sent"
