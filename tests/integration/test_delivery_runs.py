"""Runs of batches against real SMTP servers on 127.0.0.1 (aiosmtpd): the transport asks for
the next batch while the current one is on the wire and its sessions go straight on; each
claim of a run keeps its own lease, which fences its results; a run ends when its issue stops
sending, when a lease is lost, or when the relays' time is up, and nothing given to it is
lost or sent twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.db import session_factory
from digest.delivery.recipient import Recipient
from digest.delivery.send import BatchResult, send_batch
from digest.delivery.smtp import Route, SmtpTransport
from digest.delivery.smtp_client import SmtpConfig
from digest.delivery.transports import SendResult
from digest.models import Delivery, Issue, IssueStatus
from tests.integration import test_delivery_control as control
from tests.integration.test_delivery_control import TEMPLATE, Recorder
from tests.integration.test_delivery_send import BatchSizes, ready_issue
from tests.processes import wait_until
from tests.smtp_server import free_port

servers = control.servers  # the fixture: `servers(recorder) -> port`


class Sessions(Recorder):
    """A Recorder that also counts the SMTP sessions opened to it."""

    opened = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.opened += 1
        session.host_name = hostname
        return responses


def batch(start: int, n: int, domains: tuple[str, ...] = ("example.com",)) -> list[Recipient]:
    return [Recipient(i, i, f"r{i}@{domains[i % len(domains)]}") for i in range(start, start + n)]


class Feed:
    """`more` for a transport: the batches given in turn, then none; notes how many results
    the caller had when each was asked for."""

    def __init__(self, batches: list[list[Recipient]]) -> None:
        self.batches = batches
        self.results: list[SendResult] = []
        self.asked_at: list[int] = []  # results in when each ask came

    def __call__(self) -> list[Recipient]:
        self.asked_at.append(len(self.results))
        return self.batches.pop(0) if self.batches else []

    def run(self, transport: SmtpTransport, first: list[Recipient]) -> list[SendResult]:
        try:
            for chunk in transport.send("b@example.org", first, TEMPLATE.personalise, self):
                self.results.extend(chunk)
        finally:
            transport.close()
        return self.results


def test_the_next_batch_is_asked_for_while_the_first_is_on_the_wire(servers: Any) -> None:
    rec = Sessions()
    transport = SmtpTransport(SmtpConfig(port=servers(rec)), connections=4)
    feed = Feed([batch(40, 40), batch(80, 40)])
    results = feed.run(transport, batch(0, 40))
    assert sorted(r.delivery_id for r in results) == list(range(120))
    assert {r.outcome for r in results} == {"sent"}
    assert sorted(rec.rcpts) == sorted(f"r{i}@example.com" for i in range(120))
    # Asked when half of a batch was left to take: before its last results were in, so the
    # sessions never ran dry; and once more at the end, which gave nothing.
    assert len(feed.asked_at) == 3
    assert feed.asked_at[0] < 40 and feed.asked_at[1] < 80
    assert rec.opened == 4  # the same four sessions all along


def test_domain_limits_hold_across_the_batches_of_a_run(servers: Any) -> None:
    rec = Recorder(delay=0.01)
    transport = SmtpTransport(SmtpConfig(port=servers(rec)), connections=6, domain_concurrency=2)
    domains = ("a.example", "b.example", "c.example")
    feed = Feed([batch(30, 30, domains), batch(60, 30, domains)])
    results = feed.run(transport, batch(0, 30, domains))
    assert sorted(r.delivery_id for r in results) == list(range(90))
    assert {r.outcome for r in results} == {"sent"}
    assert max(rec.peak.values()) <= 2
    assert len(rec.rcpts) == 90


def sessions_finished(transport: SmtpTransport) -> bool:
    """Nothing runs on the transport's loop any more: its batch has ended (the probe that
    asks is the only task)."""
    assert transport._loop is not None

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(tasks(), transport._loop).result() == 1


def test_a_batch_given_after_the_sessions_stopped_comes_back_untried(servers: Any) -> None:
    """The batch's time runs out while the caller claims the next one: its rows come back
    'deferred' (to pending, no attempt used), not lost and not sent."""
    rec = Recorder()
    transport = SmtpTransport(SmtpConfig(port=servers(rec)), connections=2, max_batch_seconds=1)
    late = batch(100, 10)
    feed = Feed([late])

    def more() -> Sequence[Recipient]:
        # A claim slower than the batch's time: given once the sessions have finished.
        wait_until(lambda: sessions_finished(transport), 30, 0.02, "the batch's time to run out")
        return feed()

    results: list[SendResult] = []
    try:
        for chunk in transport.send("b@example.org", batch(0, 6), TEMPLATE.personalise, more):
            results.extend(chunk)
    finally:
        transport.close()
    outcome = {r.delivery_id: r.outcome for r in results}
    assert Counter(r.delivery_id for r in results) == Counter(range(6)) + Counter(range(100, 110))
    assert {outcome[r.delivery_id] for r in late} == {"deferred"}
    assert not {r.email for r in late} & set(rec.rcpts)
    assert len(feed.asked_at) == 1  # finished sessions ask for nothing more


def test_a_relay_down_hands_its_queue_over_within_the_run(servers: Any) -> None:
    """One relay refuses connections: the batches of a run all go out through the other,
    at once (its queue is handed over, not left until the run's time is up)."""
    up = Recorder()
    # Most of the first batch goes to the dead relay: more than the live one's sessions
    # would take before asking for the next batch, were it left in the dead one's queue.
    dead = Route(SmtpConfig(port=free_port(), timeout=2), connections=2, weight=3, name="dead")
    live = Route(SmtpConfig(port=servers(up)), connections=2, weight=1, name="live")
    transport = SmtpTransport(routes=[dead, live], max_batch_seconds=30)
    feed = Feed([batch(60, 60), batch(120, 30)])
    results = feed.run(transport, batch(0, 60))
    assert sorted(r.delivery_id for r in results) == list(range(150))
    assert {r.outcome for r in results} == {"sent"}
    assert len(up.rcpts) == 150 and dead.blocked_by == "down"


class Claims(BatchSizes):
    """Notes, for every batch of a run, the lease its rows are held under, and may act (pause
    the issue, take a row over) when the run asks for more."""

    def __init__(self, inner: SmtpTransport, sf: Any, on_ask: Any = None) -> None:
        super().__init__(inner)
        self.sf, self.on_ask = sf, on_ask
        self.leases: list[set[str | None]] = []

    def note(self, given: Sequence[Recipient]) -> None:
        super().note(given)
        if given:
            with self.sf() as s:
                ids = [r.delivery_id for r in given]
                self.leases.append(
                    set(s.scalars(select(Delivery.lease_owner).where(Delivery.id.in_(ids))))
                )

    def asking(self) -> None:
        if self.on_ask is not None:
            self.on_ask(self)


def run(sf: Any, issue_id: int, transport: Claims) -> BatchResult:
    """A run of batches of 50 (its time longer than it needs), the transport closed after."""
    try:
        return send_batch(sf, issue_id, "w", transport, get_settings(), size=50, refill_for=60)
    finally:
        transport.close()


def statuses(session: Session, issue_id: int) -> Counter[str]:
    session.expire_all()
    return Counter(
        session.scalars(select(Delivery.status).where(Delivery.issue_id == issue_id)).all()
    )


def test_a_run_claims_each_batch_under_its_own_lease(
    session: Session, db_url: str, servers: Any
) -> None:
    issue_id = ready_issue(session, 120, others=False)
    rec = Sessions()
    sf = session_factory(db_url)
    transport = Claims(SmtpTransport(SmtpConfig(port=servers(rec)), connections=3), sf)
    result = run(sf, issue_id, transport)
    assert (result.claimed, result.sent, result.refused) == (120, 120, 0)
    assert transport.sizes == [50, 50, 20]
    assert all(len(leases) == 1 for leases in transport.leases)
    tokens = [next(iter(leases)) for leases in transport.leases]
    assert len(set(tokens)) == 3 and all(t and t.startswith("w/") for t in tokens)
    assert statuses(session, issue_id) == Counter(sent=120)
    assert len(rec.rcpts) == 120 == len(set(rec.rcpts)) and rec.opened == 3


def test_a_lost_lease_stops_the_run_and_gives_back_the_rest(
    session: Session, db_url: str, servers: Any
) -> None:
    """A row of the run's second claim is taken over (as if that claim had stalled past its
    lease): its result is refused, the run claims nothing more, and what it still holds goes
    back to pending; nothing is sent twice or left behind."""
    issue_id = ready_issue(session, 150, others=False)
    rec = Recorder(delay=0.005)
    sf = session_factory(db_url)

    def take_over(claims: Claims) -> None:
        if len(claims.sizes) != 2:
            return  # the second claim is given, the third asked for: take a row of the second
        with sf.begin() as s:
            victim = s.scalar(
                select(Delivery.id)
                .where(Delivery.issue_id == issue_id, Delivery.lease_owner.in_(claims.leases[1]))
                .order_by(Delivery.id.desc())
                .limit(1)
            )
            s.execute(update(Delivery).where(Delivery.id == victim).values(lease_owner="other"))

    transport = Claims(
        SmtpTransport(SmtpConfig(port=servers(rec)), connections=2), sf, on_ask=take_over
    )
    result = run(sf, issue_id, transport)
    assert result.refused == 1
    counts = statuses(session, issue_id)
    assert counts["sending"] == 1  # the row taken over, still the other holder's
    assert counts["sent"] == result.sent and counts["sent"] + counts["pending"] == 149
    assert len(rec.rcpts) == len(set(rec.rcpts))
    # Every copy the server took is on record as sent, but the one the other holder has and
    # those acknowledged and not yet written when the run stopped (on the wire, or reported
    # and not taken in): back to pending, so they go again, the duplicates a crash allows.
    session.expire_all()
    by_status = {
        email: status
        for email, status in session.execute(
            select(Delivery.email, Delivery.status).where(Delivery.issue_id == issue_id)
        )
    }
    unrecorded = [r for r in rec.rcpts if by_status[r] != "sent"]
    assert sorted(by_status[r] for r in unrecorded).count("sending") == 1
    assert all(by_status[r] in ("pending", "sending") for r in unrecorded)
    assert len(unrecorded) <= 1 + 10


def test_a_run_ends_when_its_issue_is_paused(session: Session, db_url: str, servers: Any) -> None:
    issue_id = ready_issue(session, 120, others=False)
    rec = Recorder()
    sf = session_factory(db_url)

    def pause(_: Claims) -> None:
        with sf.begin() as s:
            s.execute(update(Issue).where(Issue.id == issue_id).values(status=IssueStatus.PAUSED))

    transport = Claims(
        SmtpTransport(SmtpConfig(port=servers(rec)), connections=2), sf, on_ask=pause
    )
    result = run(sf, issue_id, transport)
    assert (result.claimed, result.sent) == (50, 50)
    assert transport.sizes == [50]
    assert statuses(session, issue_id) == Counter(sent=50, pending=70)
