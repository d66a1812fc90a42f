"""Per-destination-domain concurrency: at most N messages in flight to one recipient domain.

`LocalSlots` counts in this sending process (the embedded mode: one sender). `RedisSlots`
makes the limit hold across every sending process and machine: a slot is a member of a sorted
set per domain in Redis, scored by its expiry. A batch takes a slot with one Lua call when it
has no free slot of its own for the domain, keeps it while more of its messages go to that
domain (so a busy domain costs a few Redis calls per batch, not one per message), and gives it
back as soon as it has none left, or when the batch ends. A process that dies holding slots
loses them at their expiry (the batch's time limit plus the SMTP timeout), never for good
(digest/redis_slots.py keeps the slots).

Every call is a coroutine on the SMTP sessions' event loop, and the Redis calls go through
redis.asyncio: a session waiting on a slow Redis lets the other sessions send meanwhile.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Protocol

from digest.redis_slots import AsyncSlotSet

log = logging.getLogger(__name__)

KEY_PREFIX = "digest:domain"


class DomainSlots(Protocol):
    async def take(self, domain: str) -> bool:
        """A slot for one more message to `domain` now (False: the domain is at its limit)."""
        ...

    async def give_back(self, domain: str, more_coming: bool) -> None:
        """One message to `domain` is done; `more_coming`: the batch has more for it."""
        ...

    async def close(self) -> None:
        """The batch is over: give back every slot still held."""
        ...


class LocalSlots:
    """Messages in flight per domain, counted in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight: Counter[str] = Counter()

    async def take(self, domain: str) -> bool:
        if self.inflight[domain] >= self.limit:
            return False
        self.inflight[domain] += 1
        return True

    async def give_back(self, domain: str, more_coming: bool) -> None:
        self.inflight[domain] -= 1

    async def close(self) -> None:
        self.inflight.clear()


class RedisSlots:
    """Slots shared through Redis by every process sending with the same limit. One object per
    batch, used from one event loop with a redis.asyncio client; sessions of the batch take
    slots concurrently, so a slot being asked for counts as in flight until Redis answers."""

    def __init__(self, limit: int, client: Any, ttl: float) -> None:
        self.limit = limit
        self.ttl = ttl
        self.inflight: Counter[str] = Counter()
        self.held: dict[str, list[str]] = {}
        self._slots = AsyncSlotSet(client, KEY_PREFIX)

    async def take(self, domain: str) -> bool:
        held = self.held.setdefault(domain, [])
        if self.inflight[domain] < len(held):
            self.inflight[domain] += 1
            return True
        if self.inflight[domain] >= self.limit:
            return False
        self.inflight[domain] += 1  # reserved while Redis is asked: no other session over-asks
        # Redis away (or lately): keep sending under this process's own count ("" member).
        taken, member = True, ""
        if not self._slots.down:
            member = self._slots.new_member()
            try:
                taken = await self._slots.take(domain, self.limit, self.ttl, member)
            except Exception as exc:
                self._slots.unavailable(exc)
                taken, member = True, ""
        if taken:
            held.append(member)
        else:
            self.inflight[domain] -= 1
        return taken

    async def give_back(self, domain: str, more_coming: bool) -> None:
        self.inflight[domain] -= 1
        if not more_coming:
            held = self.held.get(domain, [])
            spare = held[self.inflight[domain] :]
            del held[self.inflight[domain] :]
            await self._release(domain, spare)

    async def close(self) -> None:
        held, self.held = self.held, {}
        self.inflight.clear()
        for domain, members in held.items():
            await self._release(domain, members)

    async def _release(self, domain: str, members: list[str]) -> None:
        members = [m for m in members if m]  # "" stands for a slot counted locally only
        if not members:
            return
        try:
            await self._slots.give_back(domain, members)
        except Exception as exc:  # they expire on their own
            self._slots.unavailable(exc)


def make_slots(limit: int, redis_client: Any | None, ttl: float) -> DomainSlots | None:
    """The slots for one batch: none without a limit, shared ones when Redis is there."""
    if not limit:
        return None
    if redis_client is not None:
        return RedisSlots(limit, redis_client, ttl)
    return LocalSlots(limit)
