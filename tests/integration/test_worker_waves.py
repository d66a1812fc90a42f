"""Local-time sending on real `digest worker` processes over Redis and PostgreSQL (issue 11):
an issue whose deliveries come due in waves, and what happens between and during them.

The issue is planned by the product (`start_sending` for a list sending at 09:00 in each
reader's zone: one wave per zone, hours apart). Real time cannot wait 26 hours, so the test
then moves each wave's moment (`due_at`, and `next_attempt_at`, which planning sets to it and
the claim reads) to a few seconds from now, keeping their order: from then on the workers,
the chasers and the claim see an issue whose waves are seconds apart. The SMTP server on
127.0.0.1 notes when it took each copy, so "not before its wave" is checked on the server's
side. Four stories: the waves in turn, a pause between two, a kill -9 inside one, and beat
restarted between two while no chaser is left to bring the next one.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis
from celery import Celery
from sqlalchemy import select, update

from digest.db import session_scope
from digest.delivery.ledger import waves_to_come
from digest.issues import lifecycle
from digest.models import Delivery, DeliveryStatus, Issue, MailingList, Subscriber, utcnow
from digest.pipeline import start_sending
from tests.conftest import truncate_all
from tests.crash_issue import (
    address,
    attempts_by_address,
    issue_state,
    leased_by,
    leasing_pids,
    make_issue,
    wait_sent,
)
from tests.faulty_smtp import CopyHandler, CopyLog, RestartableSMTPServer
from tests.helpers import clean_env, run_digest
from tests.processes import (
    RedisServer,
    WorkerProcess,
    digest_env,
    reap,
    require_redis_server,
    stop_all,
    wait_until,
)
from workers.chasers import KEY_PREFIX

# Three zones whose 09:00 fall at three different UTC moments, whatever the date.
ZONES = ("Asia/Tokyo", "UTC", "America/New_York")
PER_WAVE = 20
BATCH = 5  # a wave is several batches
FIRST = 3.0  # seconds from the hand-over to the first wave
GAP = 4.0  # seconds between two waves: a wave of 20 takes well under a second unloaded


@dataclass(frozen=True)
class Wave:
    due_at: datetime  # naive UTC, as the ledger keeps it
    addresses: frozenset[str]


def local_time_issue(url: str) -> int:
    """An approved issue of a list sending at 09:00 in each reader's zone; its readers
    spread over ZONES (reader n lives in ZONES[n % 3])."""
    issue_id = make_issue(url, PER_WAVE * len(ZONES), items=5)
    with session_scope(url) as session:
        session.execute(update(MailingList).values(send_local_time="09:00"))
        for n, zone in enumerate(ZONES):
            emails = [address(i) for i in range(n, PER_WAVE * len(ZONES), len(ZONES))]
            session.execute(
                update(Subscriber).where(Subscriber.email.in_(emails)).values(timezone=zone)
            )
    return issue_id


def plan_waves(url: str, issue_id: int, gaps: tuple[float, ...] = (GAP, GAP)) -> list[Wave]:
    """Plan the issue as the product does (one wave per zone, at its 09:00), check the
    plan, then move the waves to FIRST, FIRST + gaps[0], ... seconds from now, in their
    order."""
    with session_scope(url) as session:
        start_sending(session, issue_id)
    with session_scope(url) as session:
        planned = waves_to_come(session, issue_id)
        rows = session.execute(
            select(Delivery.email, Delivery.due_at, Delivery.next_attempt_at).where(
                Delivery.issue_id == issue_id
            )
        ).all()
        zone_of = dict(session.execute(select(Subscriber.email, Subscriber.timezone)).all())
    assert [w.deliveries for w in planned] == [PER_WAVE] * len(ZONES), planned
    by_due: dict[datetime, set[str]] = {}
    for email, due_at, next_at in rows:
        assert due_at is not None and next_at == due_at, "the claim would not wait for it"
        local = due_at.replace(tzinfo=UTC).astimezone(ZoneInfo(str(zone_of[email])))
        assert (local.hour, local.minute) == (9, 0), f"{email}: due at {local}"
        by_due.setdefault(due_at, set()).add(email)
    # Each wave is one zone's readers, the waves within 26 hours of each other.
    assert sorted(len({zone_of[e] for e in emails}) for emails in by_due.values()) == [1, 1, 1]
    assert len(by_due) == len(ZONES)
    assert max(by_due) - min(by_due) < timedelta(hours=26)
    start = utcnow()
    waves = []
    with session_scope(url) as session:
        for k, old in enumerate(sorted(by_due)):
            new = start + timedelta(seconds=FIRST + sum(gaps[:k]))
            session.execute(
                update(Delivery)
                .where(Delivery.issue_id == issue_id, Delivery.due_at == old)
                .values(due_at=new, next_attempt_at=new)
            )
            waves.append(Wave(new, frozenset(by_due[old])))
    return waves


def hand_over(broker_url: str, issue_id: int) -> None:
    """What `digest issues send` does after planning, with a broker: send_issue to the
    workers (it starts the issue's chasers)."""
    Celery(broker=broker_url).send_task("workers.tasks.send_issue", args=[issue_id], queue="send")


def received_at(copy_at: float) -> datetime:
    return datetime.fromtimestamp(copy_at, UTC).replace(tzinfo=None)


def wait_clock_past(moment: datetime, what: str) -> None:
    wait_until(lambda: utcnow() > moment, 60, 0.05, what)


def wait_wave(log: CopyLog, wave: Wave, timeout: float, what: str) -> None:
    """Until every reader of the wave has a copy."""
    left = (wave.due_at - utcnow()).total_seconds()
    wait_until(
        lambda: wave.addresses <= {c.rcpt for c in log.snapshot()},
        max(left, 0) + timeout,
        0.05,
        what,
    )


def status_of(url: str, issue_id: int) -> str:
    return issue_state(url, issue_id)[0]


def check_between(url: str, issue_id: int, log: CopyLog, later: list[Wave]) -> None:
    """Between two waves: while a later wave has readers without a copy, the issue is
    still sending (status read first: 'sent' then means they all had theirs). That no copy
    of a later wave went out early is `check_timing`'s, from the server's clock."""
    status = status_of(url, issue_id)
    missing = {a for w in later for a in w.addresses} - {c.rcpt for c in log.snapshot()}
    if missing:
        assert status == "sending", f"the issue is {status} with {len(missing)} still to come"


def check_timing(url: str, issue_id: int, log: CopyLog, waves: list[Wave]) -> None:
    """Every reader got a copy, none before its wave's moment; the issue became sent after
    its last wave's last copy."""
    due = {a: w.due_at for w in waves for a in w.addresses}
    copies = log.snapshot()
    assert {c.rcpt for c in copies} == set(due), "a reader got nothing, or a stranger mail"
    early = [
        (c.rcpt, received_at(c.at), due[c.rcpt]) for c in copies if received_at(c.at) < due[c.rcpt]
    ]
    assert not early, f"copies taken by the server before their wave was due: {early[:5]}"
    with session_scope(url) as session:
        sent_at = session.scalar(select(Issue.sent_at).where(Issue.id == issue_id))
    assert sent_at is not None and sent_at >= max(w.due_at for w in waves)
    assert sent_at >= max(received_at(c.at) for c in copies), "sent before its last copy"


def lag(log: CopyLog, wave: Wave) -> float:
    """Seconds from the wave's moment to its last copy."""
    last = max(received_at(c.at) for c in log.snapshot() if c.rcpt in wave.addresses)
    return (last - wave.due_at).total_seconds()


def chasers_held(broker_url: str, issue_id: int) -> int:
    return len(redis.Redis.from_url(broker_url).keys(f"{KEY_PREFIX}:{issue_id}:*"))


def test_waves_go_out_at_their_moment_and_a_pause_between_two_holds_the_next(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    """Wave 0 and wave 1 go out at their moments, the issue sending between them; paused
    after wave 1, wave 2 is held past its moment (the chasers come back for it and end);
    `digest issues resume` sends it; the issue is sent after it, nobody served twice."""
    require_redis_server()
    truncate_all(pg_url)
    issue_id = local_time_issue(pg_url)
    handler = CopyHandler()
    worker: WorkerProcess | None = None
    with RedisServer(tmp_path / "redis") as broker, RestartableSMTPServer(handler) as smtp:
        env = digest_env(pg_url, broker.url, smtp.port, batch_size=str(BATCH))
        try:
            worker = WorkerProcess(env, tmp_path / "worker.log")
            worker.wait_ready()
            waves = plan_waves(pg_url, issue_id)
            hand_over(broker.url, issue_id)
            wait_wave(handler.log, waves[0], 30, "wave 0")
            check_between(pg_url, issue_id, handler.log, waves[1:])
            wait_wave(handler.log, waves[1], 30, "wave 1")
            check_between(pg_url, issue_id, handler.log, waves[2:])
            # What `digest issues pause` does (in-process: the CLI's start-up would eat the
            # gap between the waves on a loaded machine).
            with session_scope(pg_url) as session:
                lifecycle.pause(session, issue_id)
            paused_at = utcnow()
            assert paused_at < waves[2].due_at, "wave 1 took the whole gap: pause too late"
            # Held past its moment: the clock passes it, and the chasers, come back for it,
            # found the issue paused and ended (their slots freed).
            wait_clock_past(waves[2].due_at + timedelta(seconds=1), "wave 2's moment to pass")
            wait_until(
                lambda: chasers_held(broker.url, issue_id) == 0, 30, 0.05, "the chasers to end"
            )
            held_copies = len(handler.log)
            with session_scope(pg_url) as session:
                waiting = set(
                    session.scalars(
                        select(Delivery.email).where(
                            Delivery.issue_id == issue_id,
                            Delivery.status == DeliveryStatus.PENDING,
                        )
                    )
                )
            assert status_of(pg_url, issue_id) == "paused"
            resumed_at = utcnow()
            resumed = run_digest("issues", "resume", str(issue_id), env=env, timeout=60)
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
            wait_wave(handler.log, waves[2], 30, "wave 2 after the resume")
            status, counts = wait_sent(pg_url, issue_id, 30)
            stop_all([worker])
        finally:
            reap([worker])
    copies = handler.log.snapshot()
    first_after = min(received_at(c.at) for c in copies if c.rcpt in waves[2].addresses)
    report_counts(
        f"\nlast copy after its moment: wave 0 {lag(handler.log, waves[0]):.2f} s, wave 1 "
        f"{lag(handler.log, waves[1]):.2f} s; paused "
        f"{(waves[2].due_at - paused_at).total_seconds():.2f} s before wave 2, resumed "
        f"{(resumed_at - waves[2].due_at).total_seconds():.2f} s after its moment, its first "
        f"copy {(first_after - resumed_at).total_seconds():.2f} s after the resume"
    )
    assert held_copies == 2 * PER_WAVE, "a copy went out while the issue was paused"
    assert waiting == waves[2].addresses, "the paused wave's rows are not all pending"
    assert first_after >= resumed_at, "wave 2 went out while paused"
    assert status == "sent" and counts.sent == PER_WAVE * len(ZONES)
    check_timing(pg_url, issue_id, handler.log, waves)
    assert set(handler.log.per_recipient().values()) == {1}, "someone got two copies"


@dataclass
class HoldingHandler(CopyHandler):
    """Holds its answers (`held`) once it has taken `hold_at` copies: the sender is caught
    inside a wave, its batch claimed and unanswered. `release` ends the hold for good (the
    lock: a DATA checking the threshold as the test releases cannot hold again after it)."""

    hold_at: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.hold_at is not None and len(self.log) >= self.hold_at:
                self.held.set()
        return await super().handle_DATA(server, session, envelope)

    def release(self) -> None:
        with self.lock:
            self.hold_at = None
            self.held.clear()


def test_a_worker_killed_inside_a_wave_and_a_new_one_complete_every_wave_once(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    require_redis_server()
    truncate_all(pg_url)
    issue_id = local_time_issue(pg_url)
    # Caught after 7 copies of wave 1 (wave 0 is 20): inside it, one batch in flight.
    handler = HoldingHandler(hold_at=PER_WAVE + 7)
    workers: list[WorkerProcess] = []
    with RedisServer(tmp_path / "redis") as broker, RestartableSMTPServer(handler) as smtp:
        env = digest_env(pg_url, broker.url, smtp.port, batch_size=str(BATCH))
        try:
            victim = WorkerProcess(env, tmp_path / "victim.log")
            workers.append(victim)
            victim.wait_ready()
            waves = plan_waves(pg_url, issue_id)
            hand_over(broker.url, issue_id)
            wait_wave(handler.log, waves[0], 30, "wave 0")
            check_between(pg_url, issue_id, handler.log, waves[1:])
            try:
                wait_until(handler.held.is_set, 60, 0.02, "the server to hold inside wave 1")
                wait_until(
                    lambda: leasing_pids(pg_url, issue_id) & victim.pool_pids(),
                    10,
                    0.01,
                    "a pool process of the victim holding a lease",
                )
                at_kill = len(handler.log)
                dead = victim.kill9()
                workers.remove(victim)
            finally:
                handler.release()
            in_flight = leased_by(pg_url, issue_id, dead)
            killed_at = utcnow()
            workers.append(WorkerProcess(env, tmp_path / "newcomer.log"))
            wait_wave(handler.log, waves[1], 60, "wave 1 completed by the newcomer")
            check_between(pg_url, issue_id, handler.log, waves[2:])
            wait_wave(handler.log, waves[2], 60, "wave 2")
            status, counts = wait_sent(pg_url, issue_id, 30)
            stop_all(workers)
        finally:
            reap(workers)
    per_rcpt = handler.log.per_recipient()
    duplicates = handler.log.duplicates()
    attempts = attempts_by_address(pg_url, issue_id)
    report_counts(
        f"\nkilled {len(dead)} processes inside wave 1 ({at_kill - PER_WAVE} of its copies "
        f"taken), {(killed_at - waves[1].due_at).total_seconds():.2f} s after its moment; "
        f"in flight {len(in_flight)}, duplicates {len(duplicates)}, ledger {counts}"
    )
    assert PER_WAVE < at_kill < 2 * PER_WAVE, "the kill did not land inside wave 1"
    assert in_flight and in_flight <= waves[1].addresses, "no lease of wave 1 reclaimed"
    assert len(in_flight) <= 2 * BATCH * 2  # two claims (a run's and its next) per pool process
    assert status == "sent" and counts.sent == PER_WAVE * len(ZONES) and counts.failed == 0
    check_timing(pg_url, issue_id, handler.log, waves)
    # Once each, but for what was in flight at the kill (accepted, not yet in the ledger):
    # that alone is sent again, with its first copy's Message-ID; claimed again, nothing else.
    assert attempts == {a: 2 if a in in_flight else 1 for w in waves for a in w.addresses}
    assert set(duplicates) <= in_flight
    for rcpt, message_ids in duplicates.items():
        assert len(message_ids) == 2 and len(set(message_ids)) == 1, rcpt
    assert all(n == 1 for r, n in per_rcpt.items() if r not in in_flight)


@dataclass
class Beat:
    """`celery beat` of the product's app (workers/app.py's schedule), its kick of the
    sending issues every KICK seconds instead of 60 (a test cannot wait minutes); the
    schedule file kept across restarts, as a deployment's is."""

    env: dict[str, str]
    workdir: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    SCRIPT = (
        "import sys\n"
        "from workers.app import app\n"
        "app.conf.beat_schedule['resume-stalled-sends']['schedule'] = float(sys.argv[1])\n"
        "app.start(['beat', '--loglevel=INFO', '--max-interval=1', '-s', sys.argv[2]])\n"
    )

    def start(self, kick_seconds: float) -> None:
        handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, str(kick_seconds), "celerybeat-schedule"],
            env=clean_env(self.env),
            cwd=self.workdir,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        wait_until(lambda: self.kicks() > 0, 60, 0.05, "beat's first kick")

    def kicks(self) -> int:
        text = self.log.read_text(errors="replace")
        return text.count("Sending due task resume-stalled-sends")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


_RECEIVED = re.compile(r"Task workers\.tasks\.send_batch\[([0-9a-f-]+)\] received")
_DONE = re.compile(r"Task workers\.tasks\.send_batch\[([0-9a-f-]+)\] (?:succeeded|failed)")


def waiting_chaser(client: redis.Redis, issue_id: int) -> str | None:
    """The id of the issue's one chaser when it waits for its countdown: its message, held
    unacked by a worker, has an ETA."""
    held = [json.loads(m)[0]["headers"] for m in client.hvals("unacked")]
    queued = [json.loads(m)["headers"] for m in client.lrange("send", 0, -1)]
    found = [
        h
        for h in held + queued
        if h["task"] == "workers.tasks.send_batch" and h["argsrepr"].startswith(f"({issue_id},")
    ]
    if len(found) == 1 and found[0].get("eta"):
        return str(found[0]["id"])
    return None


def waiting_chasers(worker: WorkerProcess) -> set[str]:
    """send_batch tasks the worker received and has not finished: a chaser waiting for its
    countdown (held by the worker's main process) or running."""
    text = worker.output()
    return set(_RECEIVED.findall(text)) - set(_DONE.findall(text))


def test_beat_restarted_between_waves_kicks_the_next_one_when_no_chaser_is_left(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    """One chaser (send_fanout 1) waits for wave 1 in one of two workers. That worker is
    killed -9 and beat restarted: no chaser is left (the dead one's message stays unacked
    for an hour), and the survivor connected before the issue was sending (its own kick had
    nothing to start). Only beat's kick, once the dead chaser's slot runs out, brings wave 1."""
    require_redis_server()
    truncate_all(pg_url)
    issue_id = local_time_issue(pg_url)
    handler = CopyHandler()
    workers: list[WorkerProcess] = []
    beat: Beat | None = None
    with RedisServer(tmp_path / "redis") as broker, RestartableSMTPServer(handler) as smtp:
        env = digest_env(pg_url, broker.url, smtp.port, batch_size=str(BATCH), send_fanout="1")
        try:
            workers = [WorkerProcess(env, tmp_path / f"worker{n}.log") for n in range(2)]
            for w in workers:
                w.wait_ready()
            beat = Beat(env, tmp_path, tmp_path / "beat1.log")
            beat.start(kick_seconds=1.0)
            # Time between waves 0 and 1 to find the chaser, stop beat and kill.
            waves = plan_waves(pg_url, issue_id, gaps=(2 * GAP, GAP))
            hand_over(broker.url, issue_id)
            wait_wave(handler.log, waves[0], 30, "wave 0")
            check_between(pg_url, issue_id, handler.log, waves[1:])
            # The one chaser, now waiting for wave 1 (its message has an ETA), in one worker.
            client = redis.Redis.from_url(broker.url)
            chaser = wait_until(
                lambda: waiting_chaser(client, issue_id), 20, 0.05, "the chaser to wait"
            )
            holder = wait_until(
                lambda: [w for w in workers if chaser in waiting_chasers(w)],
                10,
                0.05,
                "the worker holding the chaser",
            )[0]
            beat.stop()
            assert utcnow() < waves[1].due_at, "wave 1 began before the kill"
            holder.kill9()
            workers.remove(holder)
            (survivor,) = workers
            assert not waiting_chasers(survivor), "a chaser is still alive"
            restarted_at = utcnow()
            beat = Beat(env, tmp_path, tmp_path / "beat2.log")
            beat.start(kick_seconds=1.0)
            wait_wave(handler.log, waves[1], 60, "wave 1, kicked by the restarted beat")
            check_between(pg_url, issue_id, handler.log, waves[2:])
            wait_wave(handler.log, waves[2], 60, "wave 2")
            status, counts = wait_sent(pg_url, issue_id, 30)
            kicks = beat.kicks()
            beat.stop()
            stop_all(workers)
        finally:
            if beat is not None:
                beat.stop()
            reap(workers)
    report_counts(
        f"\nbeat restarted between waves: wave 1's last copy {lag(handler.log, waves[1]):.2f} s "
        f"after its moment (the dead chaser's slot ran out first), wave 2's "
        f"{lag(handler.log, waves[2]):.2f} s; kicks by the new beat {kicks}"
    )
    copies = handler.log.snapshot()
    first = min(received_at(c.at) for c in copies if c.rcpt in waves[1].addresses)
    assert first > restarted_at, "wave 1 went out with no chaser and no beat"
    assert kicks > 0
    assert status == "sent" and counts.sent == PER_WAVE * len(ZONES)
    check_timing(pg_url, issue_id, handler.log, waves)
    assert set(handler.log.per_recipient().values()) == {1}, "someone got two copies"
