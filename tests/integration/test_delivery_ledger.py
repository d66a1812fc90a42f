"""The delivery ledger on SQLite and the real PostgreSQL: plan, claim, lease, retry, fail."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session

from digest.db import session_factory
from digest.delivery.ledger import (
    MAX_BACKOFF,
    Progress,
    _claim_statement,
    claim,
    finish_issue_if_done,
    issue_progress,
    mark_deferred,
    mark_failed,
    mark_retry,
    mark_sent,
    plan_deliveries,
    renew_lease,
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


# The settings' defaults: six attempts, 30 s of back-off doubling.
RETRY = {"max_attempts": 6, "base_seconds": 30.0}


def claim_batch(
    session: Session,
    issue_id: int,
    owner: str,
    size: int,
    now: datetime,
    lease_seconds: int = 300,
) -> list[Recipient]:
    """The recipients `claim` leased, to be sent."""
    return claim(session, issue_id, owner, size, now, lease_seconds=lease_seconds).recipients


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
    mark_sent(session, [first[0].delivery_id], NOW, lease="w1")
    taken = claim(session, issue_id, "w4", 10, NOW + timedelta(seconds=61), lease_seconds=300)
    session.commit()
    again = taken.recipients
    assert len(again) == 4
    assert taken.expired == 4  # all four were taken over from a lease that ran out
    assert first[0].delivery_id not in {r.delivery_id for r in again}
    assert {d.attempts for d in rows(session, issue_id) if d.status == "sending"} == {2}


def test_sent_progress_and_finish(session: Session) -> None:
    issue_id = seed_issue(session, 4, others=False)
    plan_deliveries(session, issue_id, NOW)
    batch = claim_batch(session, issue_id, "w", 10, NOW)
    assert issue_progress(session, issue_id) == Progress(sending=4)
    assert issue_progress(session, issue_id).total == 4
    assert mark_sent(session, [r.delivery_id for r in batch[:3]], NOW, lease="w") == 3
    assert finish_issue_if_done(session, issue_id, NOW) is False
    mark_failed(session, batch[3].delivery_id, "550 5.1.1 no such user", lease="w")
    assert finish_issue_if_done(session, issue_id, NOW) is True
    session.commit()
    issue = session.get(Issue, issue_id)
    assert issue is not None and issue.status == "sent" and issue.sent_at == NOW
    assert issue_progress(session, issue_id).sent == 3
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
        written = mark_retry(
            session,
            {r.delivery_id: "451 try later"},
            now,
            lease="w",
            max_attempts=3,
            base_seconds=10,
        )
        status = written[r.delivery_id]
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
    assert mark_failed(session, batch[0].delivery_id, "550 5.1.1 unknown user", lease="w")
    assert not mark_failed(session, batch[0].delivery_id, "again", lease="w")  # settled already
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
    mark_sent(session, [r.delivery_id], NOW, lease="w")
    assert mark_retry(session, {r.delivery_id: "late 451"}, NOW, lease="w", **RETRY) == {}
    assert mark_failed(session, r.delivery_id, "late 550", lease="w") is False
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


def test_a_worker_whose_lease_was_taken_over_changes_nothing(session: Session) -> None:
    """The fence: once another claim holds a row (the first one's lease ran out), the first
    claim's writes match nothing (no sent, retry, deferred or failed; no suppression and no
    event), its renewal holds nothing, and each write says how many rows it changed."""
    issue_id = seed_issue(session, 4, others=False)
    plan_deliveries(session, issue_id, NOW)
    old = claim_batch(session, issue_id, "old", 10, NOW, lease_seconds=60)
    later = NOW + timedelta(seconds=61)
    new = claim_batch(session, issue_id, "new", 10, later, lease_seconds=60)
    session.commit()
    assert [r.delivery_id for r in old] == [r.delivery_id for r in new]
    a, b, c, d = (r.delivery_id for r in old)

    assert mark_sent(session, [a], later, lease="old") == 0
    assert mark_retry(session, {b: "451 late"}, later, lease="old", **RETRY) == {}
    assert mark_deferred(session, [c], later, "rate limit reached", lease="old") == 0
    assert mark_failed(session, d, "550 5.1.1 late", lease="old") is False
    assert renew_lease(session, issue_id, "old", later, lease_seconds=60) == 0
    session.commit()
    held = rows(session, issue_id)
    assert {(x.status, x.lease_owner, x.attempts, x.last_error) for x in held} == {
        ("sending", "new", 2, None)
    }
    assert not is_suppressed(session, old[3].email)
    assert session.scalar(select(func.count()).select_from(Event)) == 0

    # The holder's own writes go through, and its renewal extends what it still holds.
    assert renew_lease(session, issue_id, "new", later, lease_seconds=600) == 4
    assert mark_sent(session, [a], later, lease="new") == 1
    assert mark_retry(session, {b: "451 try later"}, later, lease="new", **RETRY) == {b: "pending"}
    assert mark_deferred(session, [c], later, "rate limit reached", lease="new") == 1
    assert mark_failed(session, d, "550 5.1.1 unknown user", lease="new") is True
    assert (
        renew_lease(session, issue_id, "new", later, lease_seconds=600) == 0
    )  # nothing left to hold
    session.commit()
    assert [x.status for x in rows(session, issue_id)] == ["sent", "pending", "pending", "failed"]
    assert is_suppressed(session, old[3].email)


def test_renewal_extends_only_what_the_claim_still_holds(session: Session) -> None:
    issue_id = seed_issue(session, 3, others=False)
    plan_deliveries(session, issue_id, NOW)
    a, b, c = claim_batch(session, issue_id, "w", 10, NOW, lease_seconds=60)
    mark_sent(session, [a.delivery_id], NOW, lease="w")
    assert renew_lease(session, issue_id, "w", NOW + timedelta(seconds=50), lease_seconds=60) == 2
    session.commit()
    # Past the first lease, within the renewed one: nothing to reclaim.
    assert claim_batch(session, issue_id, "x", 10, NOW + timedelta(seconds=100)) == []
    until = {x.id: x.lease_until for x in rows(session, issue_id)}
    assert until == {
        a.delivery_id: None,
        b.delivery_id: NOW + timedelta(seconds=110),
        c.delivery_id: NOW + timedelta(seconds=110),
    }


def test_retries_are_grouped_with_the_back_off_per_row(session: Session, db_url: str) -> None:
    """One UPDATE per 250 rows, whatever their attempts and errors (no SELECT, nothing per
    row): each row still gets its own back-off, error, and failure once attempts run out."""
    issue_id = seed_issue(session, 300, others=False)
    plan_deliveries(session, issue_id, NOW)
    batch = claim_batch(session, issue_id, "w", 300, NOW)
    ids = [r.delivery_id for r in batch]
    attempts = {i: 1 + n % 4 for n, i in enumerate(ids)}  # 1, 2, 3 retry; 4 gives up
    for n in range(2, 5):
        chosen = [i for i in ids if attempts[i] == n]
        session.execute(update(Delivery).where(Delivery.id.in_(chosen)).values(attempts=n))
    errors = {i: f"451 4.2.0 <p{n}@news.example.com> greylisted" for n, i in enumerate(ids)}

    statements: list[str] = []
    engine = session.get_bind()

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        written = mark_retry(session, errors, NOW, lease="w", max_attempts=4, base_seconds=10)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    session.commit()
    assert len(statements) == 2 and all(s.lstrip().startswith("UPDATE") for s in statements)
    assert written == {i: "failed" if attempts[i] == 4 else "pending" for i in ids}
    for d in rows(session, issue_id):
        if attempts[d.id] == 4:
            assert d.status == "failed"
            assert d.last_error == f"gave up after 4 attempts: {errors[d.id]}"
        else:
            assert d.status == "pending" and d.last_error == errors[d.id]
            wait = 10 * 2 ** (attempts[d.id] - 1)
            assert d.next_attempt_at == NOW + timedelta(seconds=wait)
        assert d.lease_owner is None and d.lease_until is None


def test_back_off_is_capped(session: Session) -> None:
    issue_id = seed_issue(session, 1, others=False)
    plan_deliveries(session, issue_id, NOW)
    (r,) = claim_batch(session, issue_id, "w", 10, NOW)
    session.execute(update(Delivery).values(attempts=30))
    written = mark_retry(
        session, {r.delivery_id: "451"}, NOW, lease="w", max_attempts=99, base_seconds=30
    )
    assert written == {r.delivery_id: "pending"}
    assert rows(session, issue_id)[0].next_attempt_at == NOW + MAX_BACKOFF


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_the_claim_reads_one_range_of_its_index_in_order(session: Session) -> None:
    """PostgreSQL's plan for the claim: the claim index, read in its order up to the limit,
    nothing sorted. With a second range (`OR next_attempt_at IS NULL`) PostgreSQL chose, half
    way through a 1,000,000-row send, to collect every pending row and sort them on disk on
    each claim (368 ms against 2-7 ms; benchmarks/send.py --recipients 1000000)."""
    issue_id = seed_issue(session, 400, others=False)
    plan_deliveries(session, issue_id, NOW)
    session.commit()
    claim_batch(session, issue_id, "w1", 100, NOW)
    session.commit()
    session.execute(text("ANALYZE deliveries"))
    values = {
        "issue": issue_id,
        "now": NOW,
        "wanted": 100,
        "lease": "w2",
        "leased_until": NOW + timedelta(seconds=60),
    }
    compiled = _claim_statement(True, False).compile(dialect=session.get_bind().dialect)
    explain = session.connection().exec_driver_sql(
        f"EXPLAIN {compiled.string}", {**compiled.params, **values}
    )
    plan = "\n".join(row[0] for row in explain)
    assert "Index Scan using ix_deliveries_claim" in plan and "Sort" not in plan, plan
    assert "next_attempt_at IS NULL" not in plan, plan
    session.rollback()
