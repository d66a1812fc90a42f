"""Batch chasers stay bounded: at most `send_fanout` per sending issue, however many beat
ticks and worker connects kick it. The slots on the real Redis, and a real `digest worker`
kicked again and again, its chasers counted where they live: the broker's queue and the
messages its workers hold unacknowledged (running, or waiting for their countdown)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from sqlalchemy import update

from digest.db import session_scope
from digest.models import Delivery, utcnow
from digest.pipeline import start_sending
from tests.conftest import truncate_all
from tests.crash_issue import make_issue
from tests.processes import (
    RedisServer,
    WorkerProcess,
    digest_env,
    reap,
    require_redis_server,
    stop_all,
    wait_until,
)
from tests.smtp_server import free_port
from workers.chasers import KEY_PREFIX, Chaser, ChaserSlots

FANOUT = 3
KICKS = 40  # forty minutes of beat ticks


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    c.flushdb()
    yield c
    c.flushdb()


def test_kicks_fill_free_slots_only(client: redis.Redis) -> None:
    slots = ChaserSlots(client, fanout=FANOUT, lease_seconds=60)
    first = slots.start(7)
    assert [c.slot for c in first] == [0, 1, 2]
    for _ in range(10):
        assert slots.start(7) == []  # every slot held: a kick adds nothing
    assert len(slots.start(8)) == FANOUT  # another issue has slots of its own

    # A chaser that was replaced in its slot ends; the holder keeps it.
    stale = Chaser(7, 0, "an older token")
    assert slots.keep(stale) is False
    assert slots.keep(first[0], countdown=30) is True
    assert 80 < max(slots.seconds_left(7)) <= 150  # the countdown plus two leases

    # An ending chaser frees its slot for the next kick; a stale one frees nothing.
    slots.release(stale)
    assert slots.start(7) == []
    slots.release(first[1])
    (again,) = slots.start(7)
    assert again.slot == 1 and again.token != first[1].token
    assert slots.keep(first[1]) is False  # the old token lost the slot for good


def test_a_dead_chasers_slot_runs_out_and_the_next_kick_fills_it(client: redis.Redis) -> None:
    """A chaser killed with its worker keeps nothing: its slot runs out (two leases, plus
    its countdown) and is refilled. A live chaser whose slot ran out (Redis restarted
    empty) takes it back when it goes on, unless a kick filled it first."""
    slots = ChaserSlots(client, fanout=2, lease_seconds=0.1)
    dead, alive = slots.start(1)

    def only_the_live_one_held() -> bool:
        return slots.keep(alive) and len(slots.seconds_left(1)) == 1

    wait_until(only_the_live_one_held, 5, 0.02, "the dead chaser's slot to run out")
    (replacement,) = slots.start(1)
    assert replacement.slot == dead.slot
    assert slots.keep(dead) is False

    client.flushdb()  # Redis restarted, nothing kept
    assert slots.keep(alive) is True  # free: taken back
    assert [c.slot for c in slots.start(1)] == [dead.slot]


def test_without_redis_nothing_is_counted() -> None:
    slots = ChaserSlots(None, fanout=2, lease_seconds=60)
    assert len(slots.start(1)) == len(slots.start(1)) == 2
    assert slots.keep(Chaser(1, 0, "x")) is True
    assert slots.seconds_left(1) == []


def chaser_messages(client: redis.Redis, issue_id: int) -> list[dict[str, Any]]:
    """The headers of the issue's send_batch tasks that exist: queued, or held by a worker
    (kombu keeps a delivered message in its 'unacked' hash until the task is acknowledged;
    late acks, so while it runs, and from delivery while it waits for its countdown)."""
    payloads: list[dict[str, Any]] = [json.loads(m) for m in client.lrange("send", 0, -1)]
    payloads += [json.loads(m)[0] for m in client.hvals("unacked")]
    return [
        p["headers"]
        for p in payloads
        if p["headers"]["task"] == "workers.tasks.send_batch"
        and p["headers"]["argsrepr"].startswith(f"({issue_id},")
    ]


def chasers_in_broker(client: redis.Redis, issue_id: int) -> int:
    return len(chaser_messages(client, issue_id))


def all_waiting(client: redis.Redis, issue_id: int) -> bool:
    """Chasers exist and every one waits for its countdown (none running or queued)."""
    found = chaser_messages(client, issue_id)
    return bool(found) and all(h.get("eta") for h in found)


def kicks_done(worker: WorkerProcess, at_least: int) -> bool:
    done = re.findall(r"kick_sending_issues\[[^]]+\] succeeded", worker.output())
    return len(done) >= at_least


def test_many_beat_ticks_never_add_chasers(
    pg_url: str, tmp_path: Path, report_counts: Callable[[str], None]
) -> None:
    """An issue that stays sending (its retries wait an hour), a worker, and forty kicks as
    beat sends them: the issue keeps `send_fanout` chasers, no more."""
    require_redis_server()
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, 20)
    with session_scope(pg_url) as session:
        start_sending(session, issue_id)
    with session_scope(pg_url) as session:
        later = utcnow() + timedelta(hours=1)
        session.execute(update(Delivery).values(next_attempt_at=later))
    worker: WorkerProcess | None = None
    with RedisServer(tmp_path / "redis") as broker:
        env = digest_env(pg_url, broker.url, free_port(), send_fanout=str(FANOUT))
        client = redis.Redis.from_url(broker.url)
        try:
            worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=2)
            worker.wait_ready()
            # The worker's own kick on connect starts the issue's chasers; each looks once,
            # finds nothing due for an hour and waits its countdown (30 s), held unacked.
            wait_until(lambda: all_waiting(client, issue_id), 30, 0.05, "the chasers to wait")
            beat = Celery(broker=broker.url)
            counts = []
            for n in range(1, KICKS + 1):
                beat.send_task("workers.tasks.kick_sending_issues", queue="default")
                done = n + 1  # with the one on connect
                # Done: what it enqueued is in the broker, and has had its first look.
                wait_until(partial(kicks_done, worker, done), 30, 0.05, f"kick {n}")
                wait_until(lambda: all_waiting(client, issue_id), 30, 0.05, "the chasers to wait")
                counts.append(chasers_in_broker(client, issue_id))
            slots = len(client.keys(f"{KEY_PREFIX}:{issue_id}:*"))
            stop_all([worker])
        finally:
            reap([worker])
    report_counts(f"\nchasers after each of {KICKS} kicks: {counts}; slots held {slots}")
    assert counts == [FANOUT] * KICKS
    assert slots == FANOUT
