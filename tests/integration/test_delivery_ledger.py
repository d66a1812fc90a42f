"""The delivery ledger on SQLite and the real PostgreSQL: plan, claim, lease, retry, fail."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.db import session_factory
from digest.delivery.ledger import (
    claim,
    finish_issue_if_done,
    issue_progress,
    mark_failed,
    mark_retry,
    mark_sent,
    plan_deliveries,
)
from digest.delivery.recipient import Recipient
from digest.models import (
    Delivery,
    Event,
    Issue,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)
from digest.subscribers.suppression import is_suppressed, suppress, unsuppress

NOW = datetime(2024, 2, 21, 10, 0, 0)


def claim_batch(
    session: Session,
    issue_id: int,
    owner: str,
    size: int,
    now: datetime,
    lease_seconds: int | None = None,
) -> list[Recipient]:
    """The recipients `claim` leased, to be sent."""
    return claim(session, issue_id, owner, size, now, lease_seconds).recipients


def seed_issue(
    session: Session,
    confirmed: int,
    *,
    others: bool = True,
    slug: str = "news",
    status: str = "sending",
    names: list[str] | None = None,
) -> int:
    """A list with `confirmed` confirmed subscribers (plus, with `others`, pending and
    unsubscribed ones and a second list), and an issue of it. Commits; returns the issue id."""
    mailing_list = MailingList(slug=slug, name="News")
    session.add(mailing_list)
    session.flush()
    people = []
    for i in range(confirmed):
        name = names[i % len(names)] if names else f"Person {i}"
        people.append((f"p{i}@{slug}.example.com", name, "confirmed"))
    if others:
        people += [
            (f"pending@{slug}.example.com", "Pending", "pending"),
            (f"gone@{slug}.example.com", "Gone", "unsubscribed"),
        ]
    subscribers = [Subscriber(email=e, name=n) for e, n, _ in people]
    session.add_all(subscribers)
    session.flush()
    session.add_all(
        Subscription(list_id=mailing_list.id, subscriber_id=s.id, status=status_)
        for s, (_, _, status_) in zip(subscribers, people, strict=True)
    )
    if others:
        other = MailingList(slug=f"{slug}-other", name="Other")
        session.add(other)
        session.flush()
        session.add(
            Subscription(list_id=other.id, subscriber_id=subscribers[0].id, status="confirmed")
        )
    issue = Issue(list_id=mailing_list.id, number=1, subject="News", status=status)
    session.add(issue)
    session.commit()
    return issue.id


def rows(session: Session, issue_id: int) -> list[Delivery]:
    session.expire_all()
    return list(
        session.scalars(select(Delivery).where(Delivery.issue_id == issue_id).order_by(Delivery.id))
    )


def test_plan_is_set_based_idempotent_and_skips_suppressed(session: Session) -> None:
    issue_id = seed_issue(session, 5)
    suppress(session, "P3@news.example.com", "complaint")  # case differs: still the address
    session.commit()

    assert plan_deliveries(session, issue_id, NOW) == 4
    session.commit()
    assert plan_deliveries(session, issue_id, NOW) == 0
    planned = rows(session, issue_id)
    assert sorted(d.email for d in planned) == [f"p{i}@news.example.com" for i in (0, 1, 2, 4)]
    assert {d.status for d in planned} == {"pending"}
    assert all(d.next_attempt_at == NOW and d.attempts == 0 for d in planned)
    assert planned[0].name == "Person 0"

    # A subscriber confirmed later is added by a rerun; nobody twice.
    new = Subscriber(email="late@news.example.com", name="Late")
    session.add(new)
    session.flush()
    list_id = session.scalar(select(Issue.list_id).where(Issue.id == issue_id))
    session.add(Subscription(list_id=list_id, subscriber_id=new.id, status="confirmed"))
    session.commit()
    assert plan_deliveries(session, issue_id, NOW) == 1
    assert len(rows(session, issue_id)) == 5


def test_claim_leases_due_rows_once_and_reclaims_expired_leases(session: Session) -> None:
    issue_id = seed_issue(session, 5, others=False)
    plan_deliveries(session, issue_id, NOW)
    first = claim_batch(session, issue_id, "w1", 3, NOW, lease_seconds=60)
    second = claim_batch(session, issue_id, "w2", 3, NOW, lease_seconds=60)
    third = claim_batch(session, issue_id, "w3", 3, NOW, lease_seconds=60)
    session.commit()
    assert len(first) == 3 and len(second) == 2 and third == []
    assert not {r.delivery_id for r in first} & {r.delivery_id for r in second}
    assert first[0].email.endswith("@news.example.com") and first[0].name.startswith("Person")
    claimed = rows(session, issue_id)
    assert {d.status for d in claimed} == {"sending"}
    assert {d.lease_owner for d in claimed} == {"w1", "w2"}
    assert all(d.attempts == 1 and d.lease_until == NOW + timedelta(seconds=60) for d in claimed)

    # Before the lease runs out nothing is claimable; after it, the dead worker's rows are.
    assert claim_batch(session, issue_id, "w4", 10, NOW + timedelta(seconds=59)) == []
    mark_sent(session, [first[0].delivery_id], NOW)
    again = claim_batch(session, issue_id, "w4", 10, NOW + timedelta(seconds=61))
    session.commit()
    assert len(again) == 4
    assert first[0].delivery_id not in {r.delivery_id for r in again}
    assert {d.attempts for d in rows(session, issue_id) if d.status == "sending"} == {2}


def test_sent_progress_and_finish(session: Session) -> None:
    issue_id = seed_issue(session, 4, others=False)
    plan_deliveries(session, issue_id, NOW)
    batch = claim_batch(session, issue_id, "w", 10, NOW)
    assert issue_progress(session, issue_id) == {
        "pending": 0,
        "sending": 4,
        "sent": 0,
        "failed": 0,
        "skipped": 0,
        "total": 4,
    }
    assert mark_sent(session, [r.delivery_id for r in batch[:3]], NOW) == 3
    assert finish_issue_if_done(session, issue_id, NOW) is False
    mark_failed(session, batch[3].delivery_id, "550 5.1.1 no such user")
    assert finish_issue_if_done(session, issue_id, NOW) is True
    session.commit()
    issue = session.get(Issue, issue_id)
    assert issue is not None and issue.status == "sent" and issue.sent_at == NOW
    assert issue_progress(session, issue_id)["sent"] == 3
    assert all(d.sent_at == NOW for d in rows(session, issue_id) if d.status == "sent")


def test_paused_issue_is_not_finished(session: Session) -> None:
    issue_id = seed_issue(session, 1, others=False, status="paused")
    assert finish_issue_if_done(session, issue_id, NOW) is False


def test_retry_backs_off_exponentially_then_fails_without_suppression(session: Session) -> None:
    issue_id = seed_issue(session, 1, others=False)
    plan_deliveries(session, issue_id, NOW)
    now = NOW
    waits = []
    for attempt in range(1, 4):
        (r,) = claim_batch(session, issue_id, "w", 10, now)
        status = mark_retry(
            session, r.delivery_id, "451 try later", now, max_attempts=3, base_seconds=10
        )
        (d,) = rows(session, issue_id)
        assert d.attempts == attempt
        if attempt < 3:
            assert status == "pending" and d.last_error == "451 try later"
            assert d.next_attempt_at is not None
            waits.append((d.next_attempt_at - now).total_seconds())
            assert (
                claim_batch(session, issue_id, "w", 10, d.next_attempt_at - timedelta(seconds=1))
                == []
            )
            now = d.next_attempt_at
        else:
            assert status == "failed" and d.status == "failed"
            assert "gave up after 3 attempts" in (d.last_error or "")
    assert waits == [10, 20]
    assert not is_suppressed(session, "p0@news.example.com")


def test_failed_suppresses_and_records_an_event(session: Session) -> None:
    issue_id = seed_issue(session, 2, others=False)
    plan_deliveries(session, issue_id, NOW)
    batch = claim_batch(session, issue_id, "w", 10, NOW)
    assert mark_failed(session, batch[0].delivery_id, "550 5.1.1 unknown user") is True
    assert mark_failed(session, batch[0].delivery_id, "again") is False  # settled already
    session.commit()
    assert is_suppressed(session, batch[0].email)
    event = session.scalars(select(Event).where(Event.kind == "delivery_failed")).one()
    assert event.issue_id == issue_id and event.detail["delivery_id"] == batch[0].delivery_id
    assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    assert suppress(session, batch[0].email, "bounce") is False  # idempotent
    assert unsuppress(session, batch[0].email) is True


def test_a_late_retry_never_undoes_a_sent_row(session: Session) -> None:
    issue_id = seed_issue(session, 1, others=False)
    plan_deliveries(session, issue_id, NOW)
    (r,) = claim_batch(session, issue_id, "w", 10, NOW)
    mark_sent(session, [r.delivery_id], NOW)
    assert mark_retry(session, r.delivery_id, "late 451", NOW) == "sent"
    assert mark_failed(session, r.delivery_id, "late 550") is False
    assert rows(session, issue_id)[0].status == "sent"


def test_concurrent_claimers_never_share_a_row(session: Session, db_url: str) -> None:
    issue_id = seed_issue(session, 600, others=False)
    plan_deliveries(session, issue_id, NOW)
    session.commit()
    sf = session_factory(db_url)
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def claimer(owner: str) -> None:
        mine = got.setdefault(owner, [])
        try:
            while True:
                with sf() as s:
                    batch = claim_batch(s, issue_id, owner, 25, NOW)
                    time.sleep(0.005)  # hold the row locks so claims overlap
                    s.commit()
                if not batch:
                    return
                mine.extend(r.delivery_id for r in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    claimed = [i for ids in got.values() for i in ids]
    print({owner: len(ids) for owner, ids in got.items()})
    assert len(claimed) == len(set(claimed)) == 600
    if db_url.startswith("postgresql"):  # SQLite serialises writers; PostgreSQL overlaps them
        assert sum(1 for ids in got.values() if ids) >= 2
