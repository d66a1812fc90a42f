"""An approved issue with N confirmed subscribers, and ledger reads, for the crash tests."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from digest.config import get_settings
from digest.db import session_scope
from digest.delivery.ledger import Progress, issue_progress
from digest.issues.compose import compose_issue
from digest.models import Delivery, Issue, Item, Source, utcnow
from digest.pipeline import approve_issue
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import import_csv
from tests.processes import wait_until


def address(n: int) -> str:
    return f"user{n}@example.org"


def make_issue(url: str, recipients: int, items: int = 20) -> int:
    """A list of `recipients` confirmed subscribers and an approved (frozen) issue of it."""
    with session_scope(url) as session:
        lst = create_list(session, slug="news", name="News", lookback_days=30)
        source = Source(name="Site", url="http://127.0.0.1/news", kind="html")
        session.add(source)
        session.flush()
        link_source(session, lst.id, source.id)
        now = utcnow()
        for n in range(items):
            session.add(
                Item(
                    source_id=source.id,
                    guid=f"g{n}",
                    url=f"http://127.0.0.1/n/{n}",
                    canonical_url=f"http://127.0.0.1/n/{n}",
                    title=f"Story {n} — é",
                    summary_text="Some words about the story.",
                    summary_html="<p>Some words about the story.</p>",
                    published_at=now - timedelta(days=1, minutes=n),
                    first_seen_at=now,
                )
            )
        rows = "".join(f"{address(i)},User {i}\n" for i in range(recipients))
        imported = import_csv(session, lst.id, io.StringIO("email,name\n" + rows))
        assert imported.added == recipients, imported
        issue = compose_issue(session, lst.id)
        assert issue is not None
        issue_id = issue.id
    with session_scope(url) as session:
        approve_issue(session, issue_id, get_settings())
    return issue_id


def issue_state(url: str, issue_id: int) -> tuple[str, Progress]:
    with session_scope(url) as session:
        status = session.scalar(select(Issue.status).where(Issue.id == issue_id))
        return str(status), issue_progress(session, issue_id)


def wait_sent(
    url: str, issue_id: int, timeout: float, context: Callable[[], str] | None = None
) -> tuple[str, Progress]:
    """Wait until the issue is sent; its final status and ledger counts. On a timeout the
    failure says where the issue stood (status, ledger counts, who still holds a lease)
    and whatever `context` adds (a worker's log tail ...), so a CI failure can be read."""
    try:
        wait_until(lambda: issue_state(url, issue_id)[0] == "sent", timeout, 0.2, "issue sent")
    except AssertionError as exc:
        status, counts = issue_state(url, issue_id)
        raise AssertionError(
            f"{exc}: issue {status}, ledger {counts}, leases held by pids "
            f"{sorted(leasing_pids(url, issue_id))}" + (f"\n{context()}" if context else "")
        ) from None
    return issue_state(url, issue_id)


def wait_sent_progressing(
    url: str,
    issue_id: int,
    stall: float,
    cap: float,
    context: Callable[[], str] | None = None,
) -> tuple[str, Progress]:
    """Wait until the issue is sent, for as long as it keeps moving: fail when no delivery
    is settled in the ledger for `stall` seconds (recovery lost: nobody chases it), or after
    `cap` seconds in all. What the service promises after a crash is that sending resumes
    and goes on, not a rate: a loaded machine sends slowly, and a deadline on the whole
    rest of the issue measures the machine, not the recovery."""
    started = time.monotonic()
    last_settled, last_change = -1, started
    while True:
        status, counts = issue_state(url, issue_id)
        if status == "sent":
            return status, counts
        now = time.monotonic()
        settled = counts.settled
        if settled != last_settled:
            last_settled, last_change = settled, now
        stalled = now - last_change > stall
        if stalled or now - started > cap:
            why = f"nothing settled for {stall:.0f} s" if stalled else f"not sent in {cap:.0f} s"
            raise AssertionError(
                f"{why}: issue {status}, ledger {counts}, leases held by pids "
                f"{sorted(leasing_pids(url, issue_id))}" + (f"\n{context()}" if context else "")
            )
        time.sleep(0.2)


def planned_addresses(url: str, issue_id: int) -> set[str]:
    with session_scope(url) as session:
        return set(session.scalars(select(Delivery.email).where(Delivery.issue_id == issue_id)))


def leased_by(url: str, issue_id: int, pids: set[int]) -> set[str]:
    """Addresses whose delivery is 'sending' under a lease of one of these processes
    (a lease owner is `host:pid:nonce`): the batches in flight in those processes."""
    with session_scope(url) as session:
        rows = session.execute(
            select(Delivery.email, Delivery.lease_owner).where(
                Delivery.issue_id == issue_id, Delivery.status == "sending"
            )
        ).all()
    return {email for email, owner in rows if owner and int(owner.split(":")[1]) in pids}


def leasing_pids(url: str, issue_id: int) -> set[int]:
    """The processes holding a lease on some of the issue's deliveries right now."""
    with session_scope(url) as session:
        owners = session.scalars(
            select(Delivery.lease_owner)
            .where(Delivery.issue_id == issue_id, Delivery.status == "sending")
            .distinct()
        ).all()
    return {int(owner.split(":")[1]) for owner in owners if owner}


def attempts_by_address(url: str, issue_id: int) -> dict[str, int]:
    with session_scope(url) as session:
        rows = session.execute(
            select(Delivery.email, Delivery.attempts).where(Delivery.issue_id == issue_id)
        ).all()
    return {email: int(attempts) for email, attempts in rows}
