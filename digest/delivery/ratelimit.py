"""Per-transport rate limits: at most N messages per UTC calendar second, hour and day.

Fixed windows, so the limit means what a relay's quota says ("50,000 a day") and counters are
one integer per window. Shared by every sending process through Redis (one Lua script call
grants a block of messages atomically across all windows); counted in-process for the
embedded mode. A sender takes a small block of grants at a time and drops what it did not use
when the shortest limited window it was granted in is over, so a per-second limit holds across
processes; grants are never handed back, so a limit can be undershot, never exceeded.
A take is a coroutine on the SMTP sessions' event loop and the Redis call goes through
redis.asyncio: a session waiting on a slow Redis lets the other sessions send meanwhile.
With Redis unreachable a limited relay sends nothing: the batch fails and its rows wait out
their lease, rather than every process sending as if it were alone (domains.py, a cap on
concurrency rather than a quota, falls back to counting in-process instead).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

WINDOWS = (("second", 1), ("hour", 3600), ("day", 86400))
KEY_PREFIX = "digest:rate"

# KEYS: one counter per window; ARGV: wanted, then a (limit, ttl) pair per key.
# Returns {granted, index of the window that ran out (0: none)}.
_TAKE = """
local grant = tonumber(ARGV[1])
local blocked = 0
for i, key in ipairs(KEYS) do
  local left = tonumber(ARGV[2 * i]) - tonumber(redis.call('GET', key) or '0')
  if left < grant then
    grant = math.max(left, 0)
    blocked = i
  end
end
if grant > 0 then
  for i, key in ipairs(KEYS) do
    redis.call('INCRBY', key, grant)
    redis.call('EXPIRE', key, tonumber(ARGV[2 * i + 1]))
  end
end
return {grant, blocked}
"""


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_second: int | None = None
    per_hour: int | None = None
    per_day: int | None = None

    def windows(self) -> list[tuple[str, int, int]]:
        """(name, seconds, limit) of the windows that are limited."""
        limits = (self.per_second, self.per_hour, self.per_day)
        return [(n, s, lim) for (n, s), lim in zip(WINDOWS, limits, strict=True) if lim]

    def __bool__(self) -> bool:
        return bool(self.windows())


class Counter(Protocol):
    async def take(self, wanted: int, now: float) -> tuple[int, float]:
        """Grant up to `wanted` messages now; returns (granted, seconds until a window that
        ran out opens again, or 0)."""
        ...


def _reopens(now: float, seconds: int) -> float:
    return (int(now) // seconds + 1) * seconds - now


class LocalCounter:
    """Fixed-window counters in this process (the embedded mode: one sender)."""

    def __init__(self, limit: RateLimit) -> None:
        self.windows = limit.windows()
        self._used: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    async def take(self, wanted: int, now: float) -> tuple[int, float]:
        with self._lock:
            keys = [(name, int(now) // seconds) for name, seconds, _ in self.windows]
            grant, wait = wanted, 0.0
            for key, (_, seconds, limit) in zip(keys, self.windows, strict=True):
                left = limit - self._used.get(key, 0)
                if left < grant:
                    grant, wait = max(left, 0), _reopens(now, seconds)
            if grant:
                for key in keys:
                    self._used[key] = self._used.get(key, 0) + grant
                # Forget windows that are over.
                self._used = {k: v for k, v in self._used.items() if k in keys}
            return grant, wait


class RedisCounter:
    """Fixed-window counters in Redis, shared by every process sending through a transport
    (`client`: a redis.asyncio client, used on one event loop)."""

    def __init__(self, limit: RateLimit, name: str, client: Any) -> None:
        self.windows = limit.windows()
        self.name = name
        self._script = client.register_script(_TAKE)

    async def take(self, wanted: int, now: float) -> tuple[int, float]:
        keys, args = [], [wanted]
        for window, seconds, limit in self.windows:
            keys.append(f"{KEY_PREFIX}:{self.name}:{window}:{int(now) // seconds}")
            args += [limit, seconds + 60]
        granted, blocked = await self._script(keys=keys, args=args)
        wait = _reopens(now, self.windows[int(blocked) - 1][1]) if blocked else 0.0
        return int(granted), wait


class RateLimiter:
    """What a sending session awaits before each message. Not thread-safe: one event loop."""

    def __init__(
        self,
        limit: RateLimit,
        counter: Counter,
        *,
        block: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.counter = counter
        self.clock = clock
        # Small blocks when the per-second limit is small, so processes share it fairly.
        self.block = block or max(1, min(50, (limit.per_second or 1000) // 20))
        # Grants are good within the shortest limited window they were taken in.
        windows = limit.windows()
        self._span = windows[0][1] if windows else 1
        self._tokens = 0
        self._window = -1

    async def acquire(self, max_wait: float) -> float:
        """Take one message's grant, sleeping for it up to `max_wait` seconds in all.
        Returns 0 when granted, else how long until the limit opens again (nothing taken)."""
        waited = 0.0
        while True:
            now = self.clock()
            window = int(now) // self._span
            if self._tokens and window == self._window:
                self._tokens -= 1
                return 0.0
            granted, wait = await self.counter.take(self.block, now)
            if granted:
                self._tokens, self._window = granted - 1, window
                return 0.0
            if waited + wait > max_wait:
                return max(wait, 0.001)
            await asyncio.sleep(wait)
            waited += wait


def make_counter(limit: RateLimit, name: str, redis_client: Any | None) -> Counter:
    """Redis counters when a (redis.asyncio) client is given, else in-process ones."""
    if redis_client is not None:
        return RedisCounter(limit, name, redis_client)
    return LocalCounter(limit)
