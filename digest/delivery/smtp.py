"""The SMTP transport: one or more relays, each over several pipelined sessions kept open.

The sessions live on an event loop in a thread of their own, so the caller's thread writes the
ledger while the next messages are already on the wire. Per message: 2xx sent, 4xx retry,
5xx failed; a broken session means retry for its message in flight, then a fresh session.

Control, all per sending process unless said otherwise:
- relays (routes) share a batch by weight (smooth weighted round robin, kept across batches);
  weight 0 is a standby used only while every weighted relay is unavailable;
- failover: a relay that cannot open a session while it has none open is down for
  `route_retry_seconds`; its share of the batch goes to the relays still up;
- rate limits per relay (see ratelimit.py; shared across processes through Redis): a session
  waits briefly for a grant; when the relay's window is spent its jobs go to another relay,
  or come back as 'deferred' with the time the window opens;
- at most `domain_concurrency` messages in flight to one recipient domain: across every
  sending process when Redis is there (see domains.py), else in this process;
- a batch stops starting messages after `max_batch_seconds` and defers the rest (its lease is
  renewed meanwhile: the limit only keeps one batch from holding its rows for long);
- the next batch (the caller's `more`) is asked for when half of the current one is left to
  take, and its jobs join the relays' queues while the sessions are still busy: a session
  never waits for a batch boundary (draining to the last reply, then a claim, cost about a
  twentieth of the throughput at batches of 1,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from digest.config import Settings, SmtpTransportSettings
from digest.delivery.domains import DomainSlots, make_slots
from digest.delivery.ratelimit import RateLimit, RateLimiter, make_counter
from digest.delivery.recipient import Recipient
from digest.delivery.smtp_client import SmtpConfig, SmtpConnection, SmtpError
from digest.delivery.transports import (
    More,
    Outcome,
    Render,
    Sender,
    SendResult,
    copy_failed,
    sender_for,
)
from digest.metrics import metrics, observe_many
from digest.subscribers.addresses import wire_address

IDLE_CHECK_SECONDS = 2.0  # an idle session older than this is checked with NOOP before use
WAIT_SECONDS = 0.2  # the longest the caller waits for results before getting an empty chunk
REPORT_EVERY = 64  # results handed to the caller's thread at once ...
REPORT_SECONDS = 0.02  # ... or after this long
RATE_WAIT_SECONDS = 5.0  # the longest a session sleeps for a rate-limit grant
REDIS_TIMEOUT = 2.0  # seconds for a shared counter's Redis call
# How often a session waiting for a domain slot looks again: other processes free shared
# slots without waking this one.
DOMAIN_POLL_SECONDS = 0.05

_SESSION_ERRORS = (OSError, SmtpError, TimeoutError, asyncio.IncompleteReadError)
# Put on the results queue by the sessions' loop: the caller's thread should ask `more` for
# the next batch.
_ASK = "more"
_Item = list[SendResult] | str | None


@dataclass(eq=False)
class Route:
    """One SMTP relay and its sessions."""

    config: SmtpConfig
    connections: int = 4
    weight: int = 1
    name: str = ""
    limiter: RateLimiter | None = None
    idle: list[SmtpConnection] = field(default_factory=list)
    live: int = 0  # sessions open and in use by this batch
    blocked_until: float = 0.0  # monotonic time
    blocked_by: Literal["", "down", "rate"] = ""
    last_error: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.config.host}:{self.config.port}"

    def available(self, now: float) -> bool:
        return now >= self.blocked_until

    def block(self, why: Literal["down", "rate"], seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self.blocked_until:
            self.blocked_until, self.blocked_by = until, why


@dataclass(slots=True)
class _Job:
    """A recipient taken for sending by a session: the domain slot it holds (None: no
    per-domain limit) and, once its rate grant is had, its envelope and copy."""

    recipient: Recipient
    domain: str | None
    mail_from: str = ""
    rcpt: str = ""
    data: bytes = b""


class _Reporter:
    """Hands results to the caller's thread in groups. Waking that thread for each result
    costs a GIL hand-over each time: measured 7 ms per message per session instead of 0.6.
    Counts them in the metrics in groups too: a labelled counter costs a lookup and a locked
    write to a file shared with the worker's other processes per call."""

    def __init__(self, out: queue.SimpleQueue[_Item], loop: asyncio.AbstractEventLoop) -> None:
        self.out, self.loop = out, loop
        self.buffer: list[SendResult] = []
        self.timer: asyncio.TimerHandle | None = None
        self.counts: Counter[tuple[str, str]] = Counter()  # (outcome, relay) -> results
        self.timings: dict[str, list[float]] = {}  # relay -> round trips since the last flush
        # Of a run's batches (see SmtpTransport.send's `more`): the rows of the newest one
        # without a result yet, of the ones before it, and what to call once those are in.
        self.newest: set[int] = set()
        self.earlier: set[int] = set()
        self.on_earlier_done: Callable[[], None] | None = None

    def given(self, batch: Sequence[Recipient]) -> None:
        """A batch of the run joins the queues."""
        self.earlier |= self.newest
        self.newest = {r.delivery_id for r in batch}

    def __call__(self, result: SendResult, route: str) -> None:
        self.buffer.append(result)
        self.counts[result.outcome, route] += 1
        self.newest.discard(result.delivery_id)
        if self.earlier:
            self.earlier.discard(result.delivery_id)
            if not self.earlier and self.on_earlier_done is not None:
                self.on_earlier_done()
        if len(self.buffer) >= REPORT_EVERY:
            self.flush()
        elif self.timer is None:
            self.timer = self.loop.call_later(REPORT_SECONDS, self.flush)

    def observe(self, route: str, seconds: float) -> None:
        self.timings.setdefault(route, []).append(seconds)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.counts:
            deliveries = metrics().deliveries
            for (outcome, route), n in self.counts.items():
                deliveries.labels(outcome, route).inc(n)
            self.counts.clear()
        for route, timings in self.timings.items():
            if timings:
                observe_many(metrics().smtp_seconds.labels(route), timings)
                timings.clear()
        if self.buffer:
            self.out.put(self.buffer)
            self.buffer = []

    def ask(self) -> None:
        """Ask the caller's thread for the next batch (after the results so far)."""
        self.flush()
        self.out.put(_ASK)

    def close(self) -> None:
        self.flush()
        self.out.put(None)


@dataclass
class _BatchState:
    envelope_from: Sender
    render: Render
    report: _Reporter
    deadline: float
    slots: DomainSlots | None = None
    pending: Counter[str] = field(default_factory=Counter)  # jobs not started, per domain
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # The batches the caller gives while this one goes (see SmtpTransport.send's `more`):
    open: bool = False  # the caller may have more
    asked: bool = False  # the next batch is asked for, not yet given
    low_mark: int = 0  # ask when this few jobs are left to take
    done: bool = False  # the sessions are finished: a batch given now is not taken
    queues: dict[int, deque[Recipient]] = field(default_factory=dict)  # the round's, by relay
    leftover: deque[Recipient] = field(default_factory=deque)  # given while no relay was up
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def maybe_ask(self) -> None:
        """Ask for the next batch once few enough jobs are left that it arrives (a claim:
        a few milliseconds) before the sessions run out of work, and once every batch before
        the newest has all its results: the caller writes those before it claims, so a
        process never holds more than two claims (the one going, the next)."""
        if self.open and not self.asked and not self.report.earlier:
            left = sum(map(len, self.queues.values())) + len(self.leftover)
            if left <= self.low_mark:
                self.asked = True
                self.report.ask()

    def wake(self) -> None:
        """Wake the sessions waiting for the next batch."""
        self.arrived.set()
        self.arrived = asyncio.Event()

    async def put_back(self, jobs: deque[Recipient], job: _Job) -> None:
        """A taken job goes back to the front of its queue, not started; its slot is freed."""
        jobs.appendleft(job.recipient)
        if self.slots is not None:
            self.pending[_domain(job.recipient.email)] += 1
        await self.release(job.domain)

    async def release(self, domain: str | None) -> None:
        if domain is None or self.slots is None:
            return
        await self.slots.give_back(domain, more_coming=self.pending[domain] > 0)
        self.changed.set()  # wake sessions waiting for a domain slot
        self.changed = asyncio.Event()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The sessions' loop: uvloop's where it is installed (not on Windows), whose transports
    and loop are C, not Python: about a tenth less CPU a message on the send path."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency everywhere but on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


class SmtpTransport:
    """Send batches over reused SMTP sessions of one or more relays. One batch at a time."""

    def __init__(
        self,
        config: SmtpConfig | None = None,
        connections: int = 4,
        *,
        routes: Sequence[Route] | None = None,
        domain_concurrency: int = 0,
        domain_redis: Any | None = None,
        max_batch_seconds: float = 150.0,
        route_retry_seconds: float = 30.0,
    ) -> None:
        """domain_redis: a redis.asyncio client to share the per-domain limit with every
        process sending with it (None: the limit holds in this process). Its calls run on this
        transport's event loop, whose close() closes it."""
        if routes is None:
            routes = [Route(config or SmtpConfig(), max(1, connections))]
        if not routes:
            raise ValueError("an SMTP transport needs at least one relay")
        self.routes = list(routes)
        self.domain_concurrency = domain_concurrency
        self.domain_redis = domain_redis
        self.max_batch_seconds = max_batch_seconds
        self.route_retry_seconds = route_retry_seconds
        self._current = [0] * len(self.routes)  # smooth weighted round robin state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SmtpTransport:
        """The relays Settings name: DIGEST_SMTP_TRANSPORTS, else the single DIGEST_SMTP_*.
        `overrides` change every relay's SmtpConfig (an ssl_context, a timeout, ...)."""
        s = settings
        relays = s.smtp_transports or [
            SmtpTransportSettings(
                host=s.smtp_host,
                port=s.smtp_port,
                security=s.smtp_security,
                username=s.smtp_username,
                password=s.smtp_password,
                timeout=s.smtp_timeout,
                connections=s.smtp_connections,
                per_second=s.smtp_per_second,
                per_hour=s.smtp_per_hour,
                per_day=s.smtp_per_day,
            )
        ]
        redis_url = s.shared_redis_url
        redis_client = None  # one client (and connection pool) for every shared counter
        if redis_url:
            import redis.asyncio

            # Awaited on the sessions' event loop: a slow Redis holds only the session asking
            # it, and one that does not answer fails the call in seconds.
            redis_client = redis.asyncio.Redis.from_url(
                redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
            )
        routes = []
        for relay in relays:
            config = SmtpConfig(
                host=relay.host,
                port=relay.port,
                security=relay.security,
                username=relay.username,
                password=relay.password,
                timeout=relay.timeout,
            )
            name = relay.name or f"{relay.host}:{relay.port}"
            limit = RateLimit(relay.per_second, relay.per_hour, relay.per_day)
            limiter = RateLimiter(limit, make_counter(limit, name, redis_client)) if limit else None
            routes.append(
                Route(replace(config, **overrides), relay.connections, relay.weight, name, limiter)
            )
        return cls(
            routes=routes,
            domain_concurrency=s.domain_concurrency,
            domain_redis=redis_client,
            max_batch_seconds=s.max_batch_seconds,
        )

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="smtp-transport", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def send(
        self,
        envelope_from: Sender,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        loop = self._ensure_loop()
        results: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        state = _BatchState(
            envelope_from,
            render,
            _Reporter(results, loop),
            deadline=time.monotonic() + self.max_batch_seconds,
            open=more is not None,
            low_mark=len(batch) // 2,
        )
        if more is not None:
            state.report.given(batch)
            state.report.on_earlier_done = state.maybe_ask
        future: Future[None] = asyncio.run_coroutine_threadsafe(
            self._send_all(deque(batch), state), loop
        )
        finished = False
        try:
            while not finished:
                try:
                    item = results.get(timeout=WAIT_SECONDS)
                except queue.Empty:
                    yield []
                    continue
                chunk: list[SendResult] = []
                while item is not None:
                    if isinstance(item, str):  # _ASK: results first, then the next batch
                        if chunk:
                            yield chunk
                        chunk = self._give(state, more() if more is not None else ())
                    else:
                        chunk += item
                    try:
                        item = results.get_nowait()
                    except queue.Empty:
                        break
                finished = item is None
                if chunk:
                    yield chunk
            future.result()
        finally:
            if not finished:
                future.cancel()  # the caller gave up; unreported messages keep their lease

    def _give(self, state: _BatchState, batch: Sequence[Recipient]) -> list[SendResult]:
        """Hand the next batch to the sessions (in the caller's thread). Should they have
        finished meanwhile (their time ran out, every relay went down), its rows come back
        untried, to go to pending again."""
        assert self._loop is not None
        batch = list(batch)
        taken = asyncio.run_coroutine_threadsafe(self._feed(state, batch), self._loop).result()
        if taken:
            return []
        return [SendResult(r.delivery_id, "deferred", "the batch had ended") for r in batch]

    async def _feed(self, state: _BatchState, batch: list[Recipient]) -> bool:
        """The next batch joins the queues of the round's relays that are up (False: the
        sessions are finished and took nothing); an empty one says there is no more."""
        if state.done:
            return False
        state.asked = False
        if not batch:
            state.open = False
        else:
            state.report.given(batch)
            if state.slots is not None:
                state.pending.update(_domain(r.email) for r in batch)
            if not self._share(batch, state):  # the round is ending: the next one shares them
                state.leftover.extend(batch)
            state.low_mark = len(batch) // 2
        state.wake()
        return True

    def _candidates(self, first_round: bool) -> list[int]:
        """Indexes of the relays to share jobs among now."""
        now = time.monotonic()
        up = [i for i, r in enumerate(self.routes) if r.available(now)]
        weighted = [i for i in up if self.routes[i].weight > 0]
        if weighted or up:
            return weighted or up
        if first_round and not any(r.blocked_by == "rate" for r in self.routes):
            # Every relay is down: try them again, so errors are seen (and counted) anew, and
            # a relay back up (an issue resumed after an outage) is used at once. Lifting the
            # blocks is needed: a blocked relay's sessions would not even try.
            for route in self.routes:
                route.blocked_until = 0.0
            return list(range(len(self.routes)))
        return []

    def _assign(self, jobs: deque[Recipient], chosen: list[int]) -> dict[int, deque[Recipient]]:
        if len(chosen) == 1:
            return {chosen[0]: jobs}
        weights = {i: max(self.routes[i].weight, 1) for i in chosen}
        total = sum(weights.values())
        plan: dict[int, deque[Recipient]] = {i: deque() for i in chosen}
        current = self._current
        for job in jobs:
            for i in chosen:
                current[i] += weights[i]
            pick = max(chosen, key=current.__getitem__)
            current[pick] -= total
            plan[pick].append(job)
        return plan

    async def _send_all(self, jobs: deque[Recipient], state: _BatchState) -> None:
        # A dead process's shared slots expire once its batch could no longer be sending.
        slots_ttl = self.max_batch_seconds + max(r.config.timeout for r in self.routes) + 30
        slots = state.slots = make_slots(self.domain_concurrency, self.domain_redis, slots_ttl)
        if slots is not None:
            state.pending.update(_domain(r.email) for r in jobs)
        try:
            # Each round but the last ends with a relay blocked, so a few rounds are enough.
            for round_no in range(len(self.routes) + 1):
                if not (jobs or state.open) or time.monotonic() >= state.deadline:
                    break
                chosen = self._candidates(first_round=round_no == 0)
                if not chosen:
                    break
                state.queues = self._assign(jobs, chosen)
                await asyncio.gather(
                    *(self._run_route(i, q, state) for i, q in state.queues.items())
                )
                # Left by blocked relays, and given while none of the round's was up.
                jobs = deque(job for q in state.queues.values() for job in q)
                jobs += state.leftover
                state.queues, state.leftover = {}, deque()
            # Before any await: no more asking, and a batch given from now on comes back.
            state.open, state.done = False, True
            self._settle_leftovers(jobs, state)
        finally:
            state.open, state.done = False, True
            if slots is not None:
                await slots.close()
            state.report.close()

    def _settle_leftovers(self, jobs: deque[Recipient], state: _BatchState) -> None:
        """What no relay could take: deferred past a spent rate limit or the batch's time,
        else a transport error to retry (every relay is down)."""
        now = time.monotonic()
        blocked = [r for r in self.routes if not r.available(now)]
        rate_open = [r.blocked_until - now for r in blocked if r.blocked_by == "rate"]
        outcome: Outcome
        if now >= state.deadline:
            outcome, detail, error, wait = "deferred", "batch time is up", False, 0.0
        elif rate_open:
            outcome, detail, error, wait = "deferred", "rate limit reached", False, min(rate_open)
        else:
            down = "; ".join(f"{r.name}: {r.last_error}" for r in blocked if r.blocked_by == "down")
            detail = f"no SMTP session: {down or 'unknown error'}"
            outcome, error, wait = "retry", True, 0.0
        for recipient in jobs:
            state.report(SendResult(recipient.delivery_id, outcome, detail, error, wait), "none")

    async def _run_route(self, index: int, jobs: deque[Recipient], state: _BatchState) -> None:
        route = self.routes[index]
        # With more batches to come, every session: the next batch joins this queue.
        sessions = route.connections if state.open else min(route.connections, len(jobs))
        try:
            await asyncio.gather(*(self._worker(route, jobs, state) for _ in range(sessions)))
        finally:
            self._hand_over(index, state)

    def _hand_over(self, index: int, state: _BatchState) -> None:
        """A relay's sessions have stopped (it went down or its rate window is spent): while
        more batches come, its queue goes to the round's relays still up now, not at the
        round's end, and sessions waiting for the next batch look again (when none is up,
        they stop too, and the next round shares everything out)."""
        jobs = state.queues.get(index)
        if not state.open or jobs is None:
            return
        if jobs and self._share(jobs, state, but=index):
            jobs.clear()
        state.wake()

    def _share(self, jobs: Sequence[Recipient], state: _BatchState, but: int = -1) -> bool:
        """Add jobs to the queues of the round's relays that are up now (`but` the one whose
        queue they come from), by weight. False: none is, nothing was added."""
        now = time.monotonic()
        up = [i for i in state.queues if i != but and self.routes[i].available(now)]
        if not up:
            return False
        for i, share in self._assign(deque(jobs), up).items():
            state.queues[i].extend(share)
        return True

    async def _session(self, route: Route) -> SmtpConnection | None:
        """An open session: an idle one that still answers, else a new one (None: failed)."""
        while route.idle:
            conn = route.idle.pop()
            if time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS or await conn.noop():
                return conn
            conn.abort()
        conn = SmtpConnection(route.config)
        try:
            await conn.open()
        except _SESSION_ERRORS as exc:
            route.last_error = f"{type(exc).__name__}: {exc}"
            return None
        return conn

    async def _next_job(self, jobs: deque[Recipient], state: _BatchState) -> Recipient | None:
        """The next job whose domain has a free slot (None: none has), its slot taken."""
        state.maybe_ask()
        if state.slots is None:
            return jobs.popleft()
        full: set[str] = set()  # asked once per scan: a shared slot costs a Redis call
        for _ in range(len(jobs)):
            recipient = jobs.popleft()
            domain = _domain(recipient.email)
            if domain not in full:
                if await state.slots.take(domain):
                    state.pending[domain] -= 1
                    return recipient
                full.add(domain)
            jobs.append(recipient)
        return None

    async def _worker(self, route: Route, jobs: deque[Recipient], state: _BatchState) -> None:
        conn: SmtpConnection | None = None
        job: _Job | None = None  # taken (domain slot, rate grant, copy made), not yet sent
        try:
            while True:
                if job is None:
                    if not route.available(time.monotonic()):
                        return
                    if time.monotonic() >= state.deadline:
                        return
                    if not jobs:
                        if not state.open:
                            return
                        await self._wait_for_more(state)
                        if conn is not None and not await self._still_open(conn):
                            route.live -= 1
                            conn.abort()
                            conn = None
                        continue
                    recipient = await self._next_job(jobs, state)
                    if recipient is None:
                        # Every job left waits for a busy domain: a slot freed here wakes us
                        # at once, one freed by another process is seen at the next look.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(state.changed.wait(), DOMAIN_POLL_SECONDS)
                        continue
                    job = await self._take(route, recipient, jobs, state, RATE_WAIT_SECONDS)
                    if job is None:
                        if not route.available(time.monotonic()):
                            return  # the relay's rate window is spent: the job went back
                        continue  # this copy could not be made: it failed alone
                # A job carried over was taken before the batch's time ran out: it goes.
                if conn is None or not conn.usable:
                    if conn is not None:
                        route.live -= 1
                        await conn.quit()
                    conn = await self._session(route)
                    if conn is None:
                        await state.put_back(jobs, job)
                        job = None
                        if route.live == 0:
                            # Not just a cap on sessions: the relay is down or refuses us.
                            route.block("down", self.route_retry_seconds)
                        return
                    route.live += 1
                following = await self._take_next(route, jobs, state) if conn.pipelining else None
                try:
                    await self._send_one(conn, job, following, state, route.name)
                finally:
                    await state.release(job.domain)
                    job = following  # sent next, on this session or a new one
                if not conn.usable:
                    route.live -= 1
                    conn.abort()
                    conn = None
        except asyncio.CancelledError:
            # The caller stopped the batch (its lease was taken over): a session cut off
            # mid-transaction must not be reused.
            if conn is not None:
                conn.abort()
            raise
        finally:
            if not route.available(time.monotonic()):
                state.wake()  # this relay's other sessions may be waiting for more: stop them
            if job is not None:  # only on an error or when cancelled: it was not sent
                await state.release(job.domain)
            if conn is not None:
                route.live -= 1
                if conn.usable and not conn.ahead:
                    route.idle.append(conn)
                else:
                    conn.abort()

    async def _wait_for_more(self, state: _BatchState) -> None:
        """Wait (at most until the batch's time is up) for the next batch or its end."""
        state.maybe_ask()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.arrived.wait(), state.deadline - time.monotonic())

    async def _still_open(self, conn: SmtpConnection) -> bool:
        """Did a session survive a wait for the next batch? (Checked as an idle one is.)"""
        if not conn.usable:
            return False
        return time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS or await conn.noop()

    async def _take(
        self,
        route: Route,
        recipient: Recipient,
        jobs: deque[Recipient],
        state: _BatchState,
        rate_wait: float,
    ) -> _Job | None:
        """A job for a recipient whose domain slot is taken: its rate-limit grant (waiting
        up to `rate_wait`) and its copy. None: it went back to the queue for want of a grant
        (after a real wait the relay is then blocked until its window opens), or its copy
        could not be made (its failure is reported); its slot is given back either way."""
        domain = _domain(recipient.email) if state.slots else None
        if route.limiter is not None:
            wait = await route.limiter.acquire(rate_wait)
            if wait:
                await state.put_back(jobs, _Job(recipient, domain))
                if rate_wait:
                    route.block("rate", wait)
                return None
        try:
            job = _Job(
                recipient,
                domain,
                sender_for(state.envelope_from, recipient),
                wire_address(recipient.email),
                state.render(recipient),
            )
        except Exception as exc:  # this copy cannot be made: it fails alone, the batch goes on
            state.report(copy_failed(recipient, exc), route.name)
            await state.release(domain)
            return None
        return job

    async def _take_next(
        self, route: Route, jobs: deque[Recipient], state: _BatchState
    ) -> _Job | None:
        """The job to pipeline behind the one being sent, if one can go at once: a free
        domain slot and a rate grant without waiting, the batch's time not up."""
        if not jobs or not route.available(time.monotonic()):
            return None
        if time.monotonic() >= state.deadline:
            return None
        recipient = await self._next_job(jobs, state)
        if recipient is None:
            return None
        return await self._take(route, recipient, jobs, state, 0.0)

    async def _send_one(
        self,
        conn: SmtpConnection,
        job: _Job,
        following: _Job | None,
        state: _BatchState,
        route: str,
    ) -> None:
        """Send a job; with `following`, pipeline that job's envelope behind it."""
        recipient = job.recipient
        started = time.monotonic()
        then = None if following is None else (following.mail_from, following.rcpt)
        try:
            result = await conn.send_message(job.mail_from, job.rcpt, job.data, then=then)
        except _SESSION_ERRORS as exc:
            conn.abort()
            detail = f"session lost: {type(exc).__name__}: {exc}"
            state.report(SendResult(recipient.delivery_id, "retry", detail, True), route)
            return
        state.report.observe(route, time.monotonic() - started)
        state.report(
            SendResult(
                recipient.delivery_id,
                result.outcome,
                result.detail,
                result.transport_error,
                verdict=result.verdict,
            ),
            route,
        )

    async def _quit_all(self) -> None:
        idle = [conn for route in self.routes for conn in route.idle]
        for route in self.routes:
            route.idle = []
        await asyncio.gather(*(conn.quit() for conn in idle))
        if self.domain_redis is not None:  # the counters share it; it is bound to this loop
            with contextlib.suppress(Exception):
                await self.domain_redis.aclose()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._quit_all(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
