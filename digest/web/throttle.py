"""Sign-in throttling: failed attempts per client address and per user name, with a lock-out
that doubles with every failure past a few free ones.

State lives in Redis when one is configured (DIGEST_RATE_LIMIT_REDIS_URL, else a Redis broker),
so every web process counts together; else in this process. Redis unreachable: this process
counts alone (and says so in the log) rather than letting guesses through unthrottled or
locking everyone out.

Per address, a success forgives that address's failures (the person there knows the
password). Per user name it does not: many addresses guessing one name are not forgiven by the
real user signing in between their guesses; their count only fades after a quiet day.
Nothing here knows how a password is checked: a later session login calls the same methods.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "digest:signin"
REDIS_TIMEOUT = 2.0
RETRY_SHARED_AFTER = 30.0  # seconds in-process after Redis failed, before asking it again


@dataclass(frozen=True, slots=True)
class Policy:
    free: int  # failures before the first lock-out (typos)
    first_lockout: float = 30.0  # seconds; doubled with each later failure
    max_lockout: float = 3600.0
    forget_after: float = 86400.0  # a quiet day wipes the count

    def lockout(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return float(min(self.first_lockout * 2 ** (failures - self.free), self.max_lockout))


# A person mistyping from their own address meets the address limit first; a name guessed
# from many addresses locks after a few more.
BY_ADDRESS = Policy(free=5)
BY_USER = Policy(free=10)
# A success is logged once per (user, address) in this long, not on every Basic request.
SEEN_FOR = 12 * 3600.0


class Store(Protocol):
    def locked_until(self, keys: list[str], now: float) -> float:
        """The latest lock-out end of these keys (0: none)."""
        ...

    def fail(self, key: str, policy: Policy, now: float) -> int:
        """Count a failure; lock the key per the policy. Returns the count."""
        ...

    def forgive(self, key: str) -> None: ...

    def first_seen(self, key: str, now: float, ttl: float) -> bool:
        """True once per `ttl` per key."""
        ...


class MemoryStore:
    """One process's counts (embedded mode, or Redis unreachable)."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float, float]] = {}  # count, until, expires
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> tuple[int, float, float] | None:
        entry = self._failures.get(key)
        if entry is not None and entry[2] <= now:
            del self._failures[key]
            return None
        return entry

    def locked_until(self, keys: list[str], now: float) -> float:
        with self._lock:
            return max(((e[1] if (e := self._live(k, now)) else 0.0) for k in keys), default=0.0)

    def fail(self, key: str, policy: Policy, now: float) -> int:
        with self._lock:
            count = (e[0] if (e := self._live(key, now)) else 0) + 1
            until = now + policy.lockout(count)
            self._failures[key] = (count, until, now + policy.forget_after)
            if len(self._failures) > 100_000:  # a flood of made-up names: drop the expired
                self._failures = {k: v for k, v in self._failures.items() if v[2] > now}
            return count

    def forgive(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def first_seen(self, key: str, now: float, ttl: float) -> bool:
        with self._lock:
            if self._seen.get(key, 0.0) > now:
                return False
            if len(self._seen) > 100_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            self._seen[key] = now + ttl
            return True


# KEYS[1]: the key's hash {n, until}; ARGV: now, free, first, max, forget_after.
_FAIL = """
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free, first, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
if n >= free then wait = math.min(first * 2 ^ (n - free), cap) end
redis.call('HSET', KEYS[1], 'until', tostring(tonumber(ARGV[1]) + wait))
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[5])))
return n
"""


class RedisStore:
    """Counts shared by every web process."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._fail = client.register_script(_FAIL)

    def locked_until(self, keys: list[str], now: float) -> float:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "until")
        return max((float(v) for v in pipe.execute() if v is not None), default=0.0)

    def fail(self, key: str, policy: Policy, now: float) -> int:
        args = [now, policy.free, policy.first_lockout, policy.max_lockout, policy.forget_after]
        return int(self._fail(keys=[key], args=args))

    def forgive(self, key: str) -> None:
        self._client.delete(key)

    def first_seen(self, key: str, now: float, ttl: float) -> bool:
        return bool(self._client.set(key, "1", nx=True, ex=math.ceil(ttl)))


class LoginThrottle:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._fallback = MemoryStore()
        self._clock = clock
        self._down_until = 0.0

    @staticmethod
    def _key(kind: str, value: str) -> str:
        # Hashed: bounded, printable keys whatever a client sends as its user name.
        return f"{KEY_PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"

    def _run(self, call: Callable[[Store], Any]) -> Any:
        if time.monotonic() < self._down_until:
            return call(self._fallback)
        try:
            return call(self._store)
        except RedisError as exc:  # Redis down: count here rather than not at all
            # ... for a while, so that each request does not wait out Redis's time-out.
            self._down_until = time.monotonic() + RETRY_SHARED_AFTER
            log.warning("sign-in throttle: shared store unreachable, counting in-process: %s", exc)
            return call(self._fallback)

    def retry_after(self, user: str, address: str) -> int:
        """Seconds until this user or address may try again (0: now)."""
        keys = [self._key("user", user), self._key("addr", address)]
        now = self._clock()
        until = float(self._run(lambda s: s.locked_until(keys, now)))
        return max(0, math.ceil(until - now))

    def failed(self, user: str, address: str) -> tuple[int, int]:
        """Count a failure for both; returns (failures by this user, by this address)."""
        now = self._clock()
        by_user = self._run(lambda s: s.fail(self._key("user", user), BY_USER, now))
        by_address = self._run(lambda s: s.fail(self._key("addr", address), BY_ADDRESS, now))
        return int(by_user), int(by_address)

    def succeeded(self, user: str, address: str) -> bool:
        """Forgive the address; True the first time in a while this user signs in from it."""
        self._run(lambda s: s.forgive(self._key("addr", address)))
        key = self._key("seen", f"{user}\n{address}")
        return bool(self._run(lambda s: s.first_seen(key, self._clock(), SEEN_FOR)))


def login_throttle(redis_url: str | None) -> LoginThrottle:
    if not redis_url:
        return LoginThrottle(MemoryStore())
    client = redis.Redis.from_url(
        redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
    )
    return LoginThrottle(RedisStore(client))
