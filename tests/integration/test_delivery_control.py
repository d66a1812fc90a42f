"""Delivery control against real SMTP servers on 127.0.0.1 (aiosmtpd): per-relay rate limits
and per-domain concurrency (in-process and shared through the real Redis), weighted relays
with failover and a standby, the batch time limit, skipping unsubscribed or suppressed
recipients at claim time, and relays read from DIGEST_SMTP_TRANSPORTS."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import redis
import redis.asyncio
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.cli.sending import describe
from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.domains import LocalSlots, RedisSlots, make_slots
from digest.delivery.ledger import issue_progress
from digest.delivery.message import build_template
from digest.delivery.ratelimit import (
    LocalCounter,
    RateLimit,
    RateLimiter,
    RedisCounter,
    make_counter,
)
from digest.delivery.recipient import Recipient
from digest.delivery.send import send_batch, send_issue_inline
from digest.delivery.smtp import Route, SmtpTransport
from digest.delivery.smtp_client import SmtpConfig
from digest.delivery.transports import SendResult
from digest.models import Delivery, Issue, Subscription
from digest.placeholders import Slots
from digest.subscribers.suppression import suppress
from tests.helpers import signer
from tests.integration.test_delivery_send import ready_issue
from tests.smtp_server import BoundController, free_port
from tests.tcp_proxy import TcpProxy


@dataclass
class Recorder:
    """Accepts everything; notes when each message arrived and how many were in the DATA
    phase at once per recipient domain (with `delay`, a slow server)."""

    delay: float = 0.0
    times: list[float] = field(default_factory=list)  # MAIL FROM received
    rcpts: list[str] = field(default_factory=list)
    inflight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.times.append(time.time())
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        domain = envelope.rcpt_tos[0].rpartition("@")[2]
        self.inflight[domain] += 1
        self.peak[domain] = max(self.peak[domain], self.inflight[domain])
        if self.delay:
            await asyncio.sleep(self.delay)
        self.inflight[domain] -= 1
        self.rcpts.extend(envelope.rcpt_tos)
        return "250 2.0.0 queued"


@pytest.fixture
def servers() -> Iterator[Any]:
    """`start(recorder) -> port`: an aiosmtpd server on 127.0.0.1, stopped after the test."""
    controllers: list[Controller] = []

    def start(recorder: Recorder) -> int:
        controller = BoundController(recorder)
        controller.start()
        controllers.append(controller)
        return int(controller.port)

    yield start
    for c in controllers:
        c.stop()


TEMPLATE = build_template(
    signer=signer(),
    issue_id=1, subject="s", html_body="<p>news</p>", text_body="news", slots=Slots.new(),
    list_slug="l", list_name="L", from_name="F", from_email="f@example.org", public_url="https://x.example.org",
)  # fmt: skip


def recipients(n: int, domains: tuple[str, ...] = ("example.com",)) -> list[Recipient]:
    return [Recipient(i, i, f"r{i}@{domains[i % len(domains)]}") for i in range(n)]


def send(transport: SmtpTransport, batch: list[Recipient]) -> list[SendResult]:
    try:
        return [
            r
            for chunk in transport.send("b@example.org", batch, TEMPLATE.personalise)
            for r in chunk
        ]
    finally:
        transport.close()


def limiter(limit: RateLimit) -> RateLimiter:
    return RateLimiter(limit, LocalCounter(limit))


def test_per_second_rate_limit_holds_in_every_calendar_second(servers: Any) -> None:
    rec = Recorder()
    port = servers(rec)
    limit = RateLimit(per_second=20)
    route = Route(SmtpConfig(port=port), connections=4, limiter=limiter(limit))
    started = time.time()
    results = send(SmtpTransport(routes=[route]), recipients(70))
    seconds = time.time() - started
    assert [r.outcome for r in results] == ["sent"] * 70
    per_second = Counter(int(t) for t in rec.times)
    print(f"70 messages at <= 20/s took {seconds:.2f} s; per second: {sorted(per_second.items())}")
    # Counted when MAIL FROM reaches the server, a hair after the grant: on a loaded machine a
    # message granted just before a second ends may land in the next one.
    assert max(per_second.values()) <= 20 + 1
    assert len(per_second) >= 4
    assert seconds >= 2.0  # 70 messages span at least 4 calendar seconds


def test_spent_hourly_limit_defers_the_rest_without_using_attempts(
    session: Session, db_url: str, servers: Any
) -> None:
    issue_id = ready_issue(session, 25, others=False)
    rec = Recorder()
    route = Route(SmtpConfig(port=servers(rec)), limiter=limiter(RateLimit(per_hour=10)))
    transport = SmtpTransport(routes=[route])
    try:
        result = send_batch(
            session_factory(db_url), issue_id, "w", transport, get_settings(), size=100
        )
    finally:
        transport.close()
    assert (result.claimed, result.sent, result.deferred, result.retried) == (25, 10, 15, 0)
    assert len(rec.rcpts) == 10
    session.expire_all()
    waiting = session.scalars(
        select(Delivery).where(Delivery.issue_id == issue_id, Delivery.status == "pending")
    ).all()
    assert len(waiting) == 15
    assert {d.attempts for d in waiting} == {0}  # the claim's attempt was given back
    now = session.scalar(select(Delivery.sent_at).where(Delivery.status == "sent"))
    assert now is not None
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    for d in waiting:
        assert d.last_error == "rate limit reached"
        assert d.next_attempt_at is not None
        assert next_hour <= d.next_attempt_at <= next_hour + timedelta(seconds=2)


def test_rate_limit_is_shared_through_redis(redis_url: str) -> None:
    """Two senders (as in two worker processes) on one relay's counters: together they never
    get more than the limit in a window."""
    name = f"relay-{uuid.uuid4().hex[:8]}"
    limit = RateLimit(per_second=30, per_hour=45)
    now = float(int(time.time()) + 1)

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        a, b = RedisCounter(limit, name, client), RedisCounter(limit, name, client)
        grants = [(await c.take(10, now))[0] for c in (a, b, a, b)]
        assert grants == [10, 10, 10, 0]
        granted, wait = await b.take(10, now + 0.5)
        assert granted == 0 and 0.49 < wait <= 0.5
        assert (await a.take(10, now + 1))[0] == 10
        assert (await b.take(10, now + 2))[0] == 5  # the hour's 45 are spent
        assert (await make_counter(limit, name, None).take(1, now))[0] == 1  # in-process
        keys = [k async for k in client.scan_iter(f"digest:rate:{name}:*")]
        assert keys and all([await client.ttl(k) > 0 for k in keys])  # they expire
        await client.delete(*keys)
        await client.aclose()

    asyncio.run(run())


def test_a_slow_redis_holds_only_the_session_asking_it(servers: Any, redis_url: str) -> None:
    """The shared counters are awaited on the sessions' event loop (redis.asyncio): while
    one relay's session waits seconds for a slow Redis to grant its rate limit, the other
    relay's sessions send their whole share. A blocking call there stalled every session."""
    limited, free = Recorder(), Recorder()
    host, port, db = redis_url.removeprefix("redis://").replace("/", ":").split(":")
    with TcpProxy(int(port), host, reply_delay=1.0) as proxy:
        client = redis.asyncio.Redis(port=proxy.port, db=int(db), socket_timeout=30)
        limit = RateLimit(per_hour=100_000)
        routes = [
            Route(
                SmtpConfig(port=servers(limited)),
                connections=1,
                name="limited",
                limiter=RateLimiter(limit, RedisCounter(limit, f"slow-{uuid.uuid4().hex}", client)),
            ),
            Route(SmtpConfig(port=servers(free)), connections=2, name="free"),
        ]
        transport = SmtpTransport(routes=routes, domain_redis=client)
        results = send(transport, recipients(80))
        assert proxy.held >= 1  # the grant did wait on the slow Redis
        print(f"replies held {proxy.held}")
    assert {r.outcome for r in results} == {"sent"} and len(results) == 80
    assert (len(limited.rcpts), len(free.rcpts)) == (40, 40)
    # Every message of the free relay went out before the limited relay got its first grant.
    assert max(free.times) < min(limited.times)


def test_domain_concurrency_caps_messages_in_flight_per_domain(servers: Any) -> None:
    rec = Recorder(delay=0.05)
    port = servers(rec)
    batch = recipients(60, ("big.example", "big.example", "big.example", "a.example", "b.example"))
    transport = SmtpTransport(SmtpConfig(port=port), connections=8, domain_concurrency=2)
    results = send(transport, batch)
    assert sorted(r.delivery_id for r in results) == list(range(60))
    assert {r.outcome for r in results} == {"sent"}
    print(f"peak in flight per domain: {dict(rec.peak)}")
    assert rec.peak["big.example"] == 2 and max(rec.peak.values()) <= 2

    # Without the cap the same batch runs more at once to one domain.
    rec2 = Recorder(delay=0.05)
    send(SmtpTransport(SmtpConfig(port=servers(rec2)), connections=8), batch)
    assert rec2.peak["big.example"] > 2


def test_domain_slots_in_redis_are_shared_kept_while_needed_and_given_back(
    redis_url: str,
) -> None:
    domain = f"{uuid.uuid4().hex[:12]}.example"
    key = f"digest:domain:{domain}"

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        a, b = RedisSlots(2, client, ttl=30), RedisSlots(2, client, ttl=30)
        assert await a.take(domain) and await b.take(domain)
        assert not await a.take(domain) and not await b.take(domain)  # two in flight in all
        await a.give_back(domain, more_coming=True)  # kept for a's next message to it
        assert not await b.take(domain) and await a.take(domain)
        await a.give_back(domain, more_coming=False)  # a has none left: handed back at once
        assert await client.zcard(key) == 1
        assert await b.take(domain) and not await a.take(domain)
        assert 0 < await client.ttl(key) <= 31  # the set goes away on its own too
        await b.close()  # the batch ends: everything it held goes back
        assert await client.zcard(key) == 0

        # Sessions of one batch asking at once get no more than the limit between them.
        together = RedisSlots(2, client, ttl=30)
        taken = await asyncio.gather(*(together.take(domain) for _ in range(5)))
        assert sorted(taken) == [False, False, False, True, True]
        assert together.inflight[domain] == 2 and await client.zcard(key) == 2
        await together.close()

        # A process that dies holding slots loses them at their expiry: refused until then
        # (3 s is far longer than the next call takes), then granted, polled for.
        dead = RedisSlots(2, client, ttl=3)
        assert await dead.take(domain) and await dead.take(domain)
        alive = RedisSlots(2, client, ttl=30)
        assert not await alive.take(domain)
        deadline = asyncio.get_running_loop().time() + 30
        while not await alive.take(domain):
            assert asyncio.get_running_loop().time() < deadline, "the dead slots never expired"
            await asyncio.sleep(0.05)
        assert await alive.take(domain)
        assert not await alive.take(domain)
        await alive.close()

        # Redis gone mid-batch: the process keeps sending under its own count, said once.
        away = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.2)
        lost = RedisSlots(1, away, ttl=30)
        assert await lost.take(domain) and not await lost.take(domain)
        await lost.give_back(domain, more_coming=False)
        assert await lost.take(domain)
        await lost.close()
        assert isinstance(make_slots(2, None, 30), LocalSlots)
        assert make_slots(0, client, 30) is None
        await client.aclose()

    asyncio.run(run())


def test_domain_concurrency_holds_across_sending_processes_through_redis(
    servers: Any, redis_url: str
) -> None:
    """Two transports, each with its own event loop thread and sessions, as two worker
    processes would have: with Redis the limit is for both together, without it for each."""
    tag = uuid.uuid4().hex[:8]
    big, small = f"big-{tag}.example", f"small-{tag}.example"

    def batch(start: int) -> list[Recipient]:
        return [
            Recipient(start + i, start + i, f"r{start + i}@{small if i % 4 == 0 else big}")
            for i in range(48)
        ]

    def run(shared: bool) -> Recorder:
        rec = Recorder(delay=0.03)
        port = servers(rec)
        transports = [
            SmtpTransport(
                SmtpConfig(port=port),
                connections=4,
                domain_concurrency=2,
                # A client per transport (per process): it lives on that transport's loop.
                domain_redis=redis.asyncio.Redis.from_url(redis_url) if shared else None,
            )
            for _ in range(2)
        ]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(send, transports, [batch(0), batch(100)]))
        assert [len(r) for r in results] == [48, 48]
        assert {r.outcome for rs in results for r in rs} == {"sent"}
        if shared:
            left = redis.Redis.from_url(redis_url).zcard(f"digest:domain:{big}")
            assert left == 0  # all handed back
        return rec

    shared, apart = run(shared=True), run(shared=False)
    print(f"peak in flight to {big}: shared {shared.peak[big]}, per process {apart.peak[big]}")
    assert shared.peak[big] == 2 and shared.peak[small] <= 2
    assert apart.peak[big] > 2  # each process alone keeps to 2: together they do not


def test_weighted_relays_share_a_batch_by_weight(servers: Any) -> None:
    heavy, light = Recorder(), Recorder()
    routes = [
        Route(SmtpConfig(port=servers(heavy)), connections=2, weight=3, name="heavy"),
        Route(SmtpConfig(port=servers(light)), connections=2, weight=1, name="light"),
    ]
    transport = SmtpTransport(routes=routes)
    try:
        for start in (0, 200):  # two batches: the shares hold across batches too
            batch = [Recipient(start + i, i, f"r{start + i}@example.com") for i in range(200)]
            results = [
                r
                for chunk in transport.send("b@example.org", batch, TEMPLATE.personalise)
                for r in chunk
            ]
            assert {r.outcome for r in results} == {"sent"}
    finally:
        transport.close()
    assert (len(heavy.rcpts), len(light.rcpts)) == (300, 100)
    assert not set(heavy.rcpts) & set(light.rcpts)


def test_failover_to_the_relay_that_works_and_standby_only_when_needed(servers: Any) -> None:
    up, standby = Recorder(), Recorder()
    dead = Route(SmtpConfig(port=free_port(), timeout=2), connections=2, weight=5, name="dead")
    live = Route(SmtpConfig(port=servers(up)), connections=2, weight=1, name="live")
    spare = Route(SmtpConfig(port=servers(standby)), connections=2, weight=0, name="spare")
    transport = SmtpTransport(routes=[dead, live, spare])
    try:
        results = [
            r
            for chunk in transport.send("b@example.org", recipients(50), TEMPLATE.personalise)
            for r in chunk
        ]
        assert [r.outcome for r in sorted(results, key=lambda r: r.delivery_id)] == ["sent"] * 50
        assert len(up.rcpts) == 50 and standby.rcpts == []
        assert dead.blocked_by == "down" and "ConnectionRefused" in dead.last_error

        # The weighted relays all down: the standby takes the batch.
        live.block("down", 30)
        batch = [Recipient(100 + i, i, f"s{i}@example.com") for i in range(20)]
        results = [
            r
            for chunk in transport.send("b@example.org", batch, TEMPLATE.personalise)
            for r in chunk
        ]
        assert {r.outcome for r in results} == {"sent"} and len(standby.rcpts) == 20
    finally:
        transport.close()


def test_relay_down_mid_batch_fails_over(servers: Any) -> None:
    """The first relay dies while a batch is on the wire: what it had not sent goes to the
    second; a message it lost in flight comes back as a retry, never as lost."""
    first, second = Recorder(delay=0.01), Recorder()
    controller = BoundController(first)
    controller.start()
    port = int(controller.port)
    routes = [
        Route(SmtpConfig(port=port, timeout=3), connections=2, weight=1, name="first"),
        Route(SmtpConfig(port=servers(second)), connections=2, weight=1, name="second"),
    ]
    transport = SmtpTransport(routes=routes)
    batch = recipients(300)
    results: list[SendResult] = []
    try:
        for chunk in transport.send("b@example.org", batch, TEMPLATE.personalise):
            results.extend(chunk)
            if len(first.rcpts) >= 20 and controller.server is not None:
                controller.stop()
    finally:
        transport.close()
    outcome = {r.delivery_id: r.outcome for r in results}
    assert sorted(outcome) == list(range(300))
    sent_ids = {i for i, o in outcome.items() if o == "sent"}
    delivered = Counter(first.rcpts + second.rcpts)
    assert {f"r{i}@example.com" for i in sent_ids} <= set(delivered)
    assert set(outcome.values()) <= {"sent", "retry"}
    assert len(sent_ids) >= 300 - 4  # at most one message in flight per session of the first
    assert len(second.rcpts) > 150


def test_batch_time_limit_defers_what_was_not_started(
    session: Session, db_url: str, servers: Any
) -> None:
    issue_id = ready_issue(session, 40, others=False)
    rec = Recorder(delay=0.1)
    transport = SmtpTransport(SmtpConfig(port=servers(rec)), connections=1, max_batch_seconds=0.5)
    sf = session_factory(db_url)
    try:
        first = send_batch(sf, issue_id, "w", transport, get_settings(), size=40)
        assert first.sent + first.deferred == 40 and 2 <= first.sent <= 8
        session.expire_all()
        assert {d.attempts for d in session.scalars(
            select(Delivery).where(Delivery.status == "pending"))} == {0}  # fmt: skip
        # The deferred rows are due at once; the next batches send them.
        transport.max_batch_seconds = 60
        totals = send_issue_inline(sf, issue_id, transport, get_settings())
    finally:
        transport.close()
    assert first.sent + totals.sent == 40
    assert sorted(rec.rcpts) == sorted({*rec.rcpts}) and len(rec.rcpts) == 40


def test_unsubscribed_or_suppressed_after_planning_are_skipped(
    session: Session, db_url: str, servers: Any
) -> None:
    issue_id = ready_issue(session, 12, others=False)
    subs = session.scalars(select(Subscription).order_by(Subscription.id)).all()
    subs[1].status = "unsubscribed"
    subs[2].status = "bounced"
    suppress(session, "P3@news.example.com", "complaint")
    session.delete(subs[4])
    session.commit()
    rec = Recorder()
    transport = SmtpTransport(SmtpConfig(port=servers(rec)), connections=2)
    try:
        totals = send_issue_inline(
            session_factory(db_url), issue_id, transport, get_settings(), size=5
        )
    finally:
        transport.close()
    assert (totals.claimed, totals.sent, totals.skipped) == (12, 8, 4)
    skipped = {"p1", "p2", "p3", "p4"}
    assert sorted(rec.rcpts) == sorted(
        f"p{i}@news.example.com" for i in range(12) if f"p{i}" not in skipped
    )
    session.expire_all()
    reasons = {
        d.email.split("@")[0]: d.last_error
        for d in session.scalars(select(Delivery).where(Delivery.status == "skipped"))
    }
    assert reasons == {
        "p1": "subscription unsubscribed",
        "p2": "subscription bounced",
        "p3": "address suppressed",
        "p4": "subscription deleted",
    }
    counts = issue_progress(session, issue_id)
    assert counts.skipped == 4 and counts.sent == 8 and counts.total == 12
    issue = session.get(Issue, issue_id)
    assert issue is not None and issue.status == "sent"  # skipped rows are settled
    assert describe(counts) == "8 of 12 sent, 4 skipped"


def test_relays_from_settings(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    relays = [
        {"name": "main", "host": "127.0.0.1", "port": 2525, "weight": 3, "per_second": 100,
         "per_day": 50000, "connections": 6},
        {"host": "127.0.0.2", "port": 2526, "weight": 0, "security": "starttls",
         "username": "u", "password": "p"},
    ]  # fmt: skip
    monkeypatch.setenv("DIGEST_SMTP_TRANSPORTS", json.dumps(relays))
    monkeypatch.setenv("DIGEST_DOMAIN_CONCURRENCY", "5")
    monkeypatch.setenv("DIGEST_BROKER_URL", redis_url)
    monkeypatch.setenv("DIGEST_MAX_BATCH_SECONDS", "60")
    reset_settings()
    transport = SmtpTransport.from_settings(get_settings())
    main, spare = transport.routes
    assert (main.name, main.weight, main.connections, main.config.port) == ("main", 3, 6, 2525)
    assert main.limiter is not None and isinstance(main.limiter.counter, RedisCounter)
    assert main.limiter.limit == RateLimit(per_second=100, per_day=50000)
    assert (spare.name, spare.weight, spare.limiter) == ("127.0.0.2:2526", 0, None)
    assert spare.config.security == "starttls" and spare.config.username == "u"
    assert transport.domain_concurrency == 5 and transport.max_batch_seconds == 60
    assert transport.domain_redis is not None  # the domain limit is shared through the broker

    # The single-relay settings still work, with an in-process counter without a broker.
    monkeypatch.delenv("DIGEST_SMTP_TRANSPORTS")
    monkeypatch.delenv("DIGEST_BROKER_URL")
    monkeypatch.setenv("DIGEST_SMTP_PORT", "2727")
    monkeypatch.setenv("DIGEST_SMTP_PER_HOUR", "1000")
    reset_settings()
    alone = SmtpTransport.from_settings(get_settings())
    (only,) = alone.routes
    assert only.config.port == 2727 and only.limiter is not None
    assert isinstance(only.limiter.counter, LocalCounter)
    assert alone.domain_concurrency == 5 and alone.domain_redis is None
