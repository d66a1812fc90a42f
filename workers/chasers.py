"""At most `send_fanout` batch chasers per sending issue, whatever kicks, restarts and lost
tasks do.

A chaser is a send_batch task that re-enqueues itself until its issue is done. Each one holds
a slot of its issue: the Redis key `digest:chaser:<issue>:<slot>` holds the chaser's token
and expires. A kick (send_issue, beat's kick_sending_issues, a worker connecting) starts a
chaser only in a free slot (SET NX). A chaser keeps its slot while it lives: when it starts,
at each lease renewal of its batch, and when it re-enqueues itself (for the countdown plus a
margin). A chaser that finds its slot holding another token was replaced (it was late, or its
slot ran out): it ends, so the replaced one never adds a second chaser. A chaser that dies with
its worker (kill -9) stops keeping its slot: the slot runs out and the next kick fills it.
A Redis restart loses the slots with the queued chasers: the kick on reconnect fills them.
While Redis does not answer, no chaser starts or goes on (the broker is gone too): a call
that fails says so in the log and answers as if the slot were taken.

Without Redis (another broker) nothing is shared to count with: every kick starts chasers.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from redis.exceptions import RedisError

from digest.config import Settings, get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "digest:chaser"
REDIS_TIMEOUT = 2.0

# KEYS[1]: the slot; ARGV: token, ttl (ms). Keeps the slot if it holds the token, takes it if
# it is free (a Redis restart emptied it, or it ran out with nobody in it); 0 when another
# chaser holds it.
_KEEP = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1]: the slot; ARGV[1]: token. Frees the slot only if it is still this chaser's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Chaser:
    issue_id: int
    slot: int
    token: str


class ChaserSlots:
    """The slots of each sending issue, in Redis (None: no Redis, no bound)."""

    def __init__(self, client: Any | None, fanout: int, lease_seconds: float) -> None:
        self.client = client
        self.fanout = fanout
        # A chaser renews its slot at each lease renewal (three a lease) and starts within a
        # batch's time of being due when the pool is busy: two leases cover both.
        self.margin = 2.0 * lease_seconds
        self._keep = client.register_script(_KEEP) if client is not None else None
        self._release = client.register_script(_RELEASE) if client is not None else None

    @staticmethod
    def key(issue_id: int, slot: int) -> str:
        return f"{KEY_PREFIX}:{issue_id}:{slot}"

    def _ttl_ms(self, countdown: float) -> int:
        return max(1, round((countdown + self.margin) * 1000))

    def start(self, issue_id: int, limit: int | None = None) -> list[Chaser]:
        """Take the free slots of the issue (up to `limit`); the chasers to enqueue, one per
        slot taken."""
        taken: list[Chaser] = []
        for slot in range(self.fanout):
            if limit is not None and len(taken) >= limit:
                break
            token = uuid.uuid4().hex
            key = self.key(issue_id, slot)
            try:
                free = self.client is None or self.client.set(
                    key, token, nx=True, px=self._ttl_ms(0)
                )
            except RedisError as exc:
                _unavailable(exc)
                break
            if free:
                taken.append(Chaser(issue_id, slot, token))
        return taken

    def keep(self, chaser: Chaser, countdown: float = 0.0) -> bool:
        """Keep (or retake, if free) the chaser's slot for `countdown` seconds plus the
        margin; False when another chaser holds it: this one must end."""
        if self._keep is None:
            return True
        key = self.key(chaser.issue_id, chaser.slot)
        try:
            return bool(self._keep(keys=[key], args=[chaser.token, self._ttl_ms(countdown)]))
        except RedisError as exc:
            _unavailable(exc)
            return False

    def release(self, chaser: Chaser) -> None:
        """The chaser ends (its issue is done, paused or cancelled): free its slot at once,
        so a resume fills it without waiting for it to run out."""
        if self._release is None:
            return
        try:
            self._release(keys=[self.key(chaser.issue_id, chaser.slot)], args=[chaser.token])
        except RedisError as exc:
            _unavailable(exc)

    def seconds_left(self, issue_id: int) -> list[float]:
        """How long each held slot of the issue has before it runs out."""
        if self.client is None:
            return []
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for slot in range(self.fanout):
                    pipe.pttl(self.key(issue_id, slot))
                left = pipe.execute()
        except RedisError as exc:
            _unavailable(exc)
            return []
        return [ms / 1000 for ms in left if ms > 0]


def _unavailable(exc: RedisError) -> None:
    log.warning("chaser slots unavailable (%s); a kick restores the chasers", exc)


def redis_url(settings: Settings) -> str | None:
    url = settings.broker_url or ""
    return url if url.startswith(("redis://", "rediss://")) else None


_slots: dict[int, ChaserSlots] = {}


def chaser_slots(settings: Settings | None = None) -> ChaserSlots:
    """One registry (and Redis connection pool) per worker process."""
    pid = os.getpid()
    if pid not in _slots:
        s = settings or get_settings()
        url = redis_url(s)
        client = None
        if url is not None:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
            )
        else:
            log.warning("the broker is not Redis: batch chasers per issue are not bounded")
        _slots[pid] = ChaserSlots(client, s.send_fanout, s.lease_seconds)
    return _slots[pid]
