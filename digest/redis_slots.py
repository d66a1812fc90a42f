"""Slots shared through Redis: at most N holders of a name at once, for every process.

A sorted set per name holds one member per slot held, scored by its expiry on Redis's own
clock (machines with skewed clocks agree on what expired); one Lua call takes a slot. A
holder gives its slot back when done; a process that dies holding one loses it at its expiry,
never for good. Used for the messages in flight per recipient domain (delivery/domains.py,
through `AsyncSlotSet` and redis.asyncio: its calls run on the SMTP sessions' event loop, where
a slow Redis must not stall the other sessions) and the requests in flight per host while
collecting (sources/hosts.py, `SlotSet`: threads).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from itertools import count
from typing import Any

log = logging.getLogger(__name__)

# After Redis failed to answer, holders count in their own process this long before asking
# it again: a Redis that is down costs one timeout per half-minute, not one per request.
DOWN_SECONDS = 30.0

# KEYS[1]: the name's slots; ARGV: limit, ttl (s), member. Returns 1 when the slot was taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
return 1
"""


class _Holder:
    """What both slot sets share: the member names and the memory of Redis failing."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.prefix = prefix
        self._client = client
        self._script = client.register_script(_TAKE)
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._seq = count(1)
        self._degraded = False
        self._down_until = 0.0

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def new_member(self) -> str:
        """A member no other holder (process, machine) uses."""
        return f"{self._owner}:{next(self._seq)}"

    @property
    def down(self) -> bool:
        """Redis failed lately: count in this process without asking it."""
        return time.monotonic() < self._down_until

    def unavailable(self, exc: Exception) -> None:
        """Redis did not answer: the holder counts in its own process (said once) and does
        not ask again for DOWN_SECONDS."""
        self._down_until = time.monotonic() + DOWN_SECONDS
        if not self._degraded:
            self._degraded = True
            log.warning(
                "slots %s:*: Redis unavailable (%s); counting in this process", self.prefix, exc
            )


class SlotSet(_Holder):
    """The slots of every name under `prefix`, over a synchronous redis client; calls raise
    redis's errors for the caller to decide how to go on without Redis."""

    def take(self, name: str, limit: int, ttl: float, member: str) -> bool:
        """Hold one of `name`'s `limit` slots as `member` for at most `ttl` seconds."""
        return bool(self._script(keys=[self.key(name)], args=[limit, ttl, member]))

    def give_back(self, name: str, members: list[str]) -> None:
        if members:
            self._client.zrem(self.key(name), *members)

    def held(self, name: str) -> int:
        """Slots of `name` held now (expired ones not counted)."""
        now = self._client.time()
        return int(self._client.zcount(self.key(name), now[0] + now[1] / 1e6, "+inf"))


class AsyncSlotSet(_Holder):
    """The same slots over a redis.asyncio client, for holders on an event loop."""

    async def take(self, name: str, limit: int, ttl: float, member: str) -> bool:
        return bool(await self._script(keys=[self.key(name)], args=[limit, ttl, member]))

    async def give_back(self, name: str, members: list[str]) -> None:
        if members:
            await self._client.zrem(self.key(name), *members)
