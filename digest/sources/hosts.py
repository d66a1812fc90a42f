"""Requests in flight per host for every collecting process together: `digest collect`, the
demo and each worker task keep to `collect_per_host` jointly, not each on its own.

A request holds one of its host's slots in Redis (redis_slots.SlotSet, as the sending domains
do) for as long as its fetch may last; a process that dies holding one frees it at its expiry.
A request that finds its host full polls again after a short, growing, jittered wait. With
Redis away, the limit is counted in each process, with a warning, rather than stopping
collection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from digest.config import Settings
from digest.redis_slots import SlotSet
from digest.sources.fetch import TOTAL_TIMEOUT_FACTOR

log = logging.getLogger(__name__)

KEY_PREFIX = "digest:host"
REDIS_TIMEOUT = 2.0
SLOT_MARGIN_SECONDS = 10.0  # past the fetch's own deadline
FIRST_WAIT, LONGEST_WAIT = 0.01, 0.1


class SharedHosts:
    """Each host's `limit` slots in Redis, held for at most `ttl` seconds."""

    def __init__(self, client: Any, limit: int, ttl: float) -> None:
        self.limit = limit
        self.ttl = ttl
        self.slots = SlotSet(client, KEY_PREFIX)

    async def acquire(self, host: str) -> str | None:
        """Wait for one of the host's slots; the member to release, or None when Redis did
        not answer (the request goes on under this process's own count)."""
        wait = FIRST_WAIT
        while not self.slots.down:
            member = self.slots.new_member()
            try:
                if self.slots.take(host, self.limit, self.ttl, member):
                    return member
            except RedisError as exc:
                self.slots.unavailable(exc)
                return None
            await asyncio.sleep(wait * random.uniform(0.5, 1.5))
            wait = min(wait * 2, LONGEST_WAIT)
        return None

    def release(self, host: str, member: str) -> None:
        try:
            self.slots.give_back(host, [member])
        except RedisError as exc:  # it expires on its own
            self.slots.unavailable(exc)


_clients: dict[tuple[int, str], Any] = {}


def _client(url: str) -> Any:
    """One Redis client (and connection pool) per process and URL."""
    import redis

    key = (os.getpid(), url)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
    return _clients[key]


class HostLimiter:
    """At most `per_host` requests at once to one host, and `total` in all (in this process).
    With `shared`, a request also holds one of its host's slots in Redis, so the per-host
    limit holds for every process collecting at once."""

    def __init__(
        self, per_host: int = 2, total: int = 32, shared: SharedHosts | None = None
    ) -> None:
        self.per_host = per_host
        self.shared = shared
        self._total = asyncio.Semaphore(total)
        self._hosts: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        semaphore = self._hosts.setdefault(host, asyncio.Semaphore(self.per_host))
        # The host's slots first: waiting for a busy host must not hold a global slot. Only a
        # request holding a local slot asks Redis, so a process polls for at most per_host.
        async with semaphore:
            member = await self.shared.acquire(host) if self.shared else None
            try:
                async with self._total:
                    yield
            finally:
                if self.shared and member:
                    self.shared.release(host, member)


def host_limiter(
    settings: Settings, *, per_host: int | None = None, concurrency: int | None = None
) -> HostLimiter:
    """The limiter for one collect run: shared through Redis when the settings name one (the
    rate-limit Redis, else a Redis broker), else this process's own."""
    per_host = per_host or settings.collect_per_host
    total = concurrency or settings.collect_concurrency
    url = settings.shared_redis_url
    shared = None
    if url:
        ttl = settings.fetch_timeout * TOTAL_TIMEOUT_FACTOR + SLOT_MARGIN_SECONDS
        shared = SharedHosts(_client(url), per_host, ttl)
    return HostLimiter(per_host=per_host, total=total, shared=shared)
