"""Per-destination-domain concurrency: at most N messages in flight to one recipient domain.

`LocalSlots` counts in this sending process (the embedded mode: one sender). `RedisSlots`
makes the limit hold across every sending process and machine: a slot is a member of a sorted
set per domain in Redis, scored by its expiry. A batch takes a slot with one Lua call when it
has no free slot of its own for the domain, keeps it while more of its messages go to that
domain (so a busy domain costs a few Redis calls per batch, not one per message), and gives it
back as soon as it has none left, or when the batch ends. A process that dies holding slots
loses them at their expiry (the batch's time limit plus the SMTP timeout), never for good
(digest/redis_slots.py keeps the slots).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Protocol

from digest.redis_slots import SlotSet

log = logging.getLogger(__name__)

KEY_PREFIX = "digest:domain"


class DomainSlots(Protocol):
    def take(self, domain: str) -> bool:
        """A slot for one more message to `domain` now (False: the domain is at its limit)."""
        ...

    def give_back(self, domain: str, more_coming: bool) -> None:
        """One message to `domain` is done; `more_coming`: the batch has more for it."""
        ...

    def close(self) -> None:
        """The batch is over: give back every slot still held."""
        ...


class LocalSlots:
    """Messages in flight per domain, counted in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight: Counter[str] = Counter()

    def take(self, domain: str) -> bool:
        if self.inflight[domain] >= self.limit:
            return False
        self.inflight[domain] += 1
        return True

    def give_back(self, domain: str, more_coming: bool) -> None:
        self.inflight[domain] -= 1

    def close(self) -> None:
        self.inflight.clear()


class RedisSlots:
    """Slots shared through Redis by every process sending with the same limit. One object per
    batch, used from one event loop (the Redis calls are short and synchronous, like the rate
    limiter's)."""

    def __init__(self, limit: int, client: Any, ttl: float) -> None:
        self.limit = limit
        self.ttl = ttl
        self.inflight: Counter[str] = Counter()
        self.held: dict[str, list[str]] = {}
        self._slots = SlotSet(client, KEY_PREFIX)

    def take(self, domain: str) -> bool:
        held = self.held.setdefault(domain, [])
        if self.inflight[domain] < len(held):
            self.inflight[domain] += 1
            return True
        if self.inflight[domain] >= self.limit:
            return False
        # Redis away (or lately): keep sending under this process's own count ("" member).
        taken, member = True, ""
        if not self._slots.down:
            member = self._slots.new_member()
            try:
                taken = self._slots.take(domain, self.limit, self.ttl, member)
            except Exception as exc:
                self._slots.unavailable(exc)
                taken, member = True, ""
        if taken:
            held.append(member)
            self.inflight[domain] += 1
        return taken

    def give_back(self, domain: str, more_coming: bool) -> None:
        self.inflight[domain] -= 1
        if not more_coming:
            held = self.held.get(domain, [])
            spare = held[self.inflight[domain] :]
            del held[self.inflight[domain] :]
            self._release(domain, spare)

    def close(self) -> None:
        for domain, held in self.held.items():
            self._release(domain, held)
        self.held.clear()
        self.inflight.clear()

    def _release(self, domain: str, members: list[str]) -> None:
        members = [m for m in members if m]  # "" stands for a slot counted locally only
        if not members:
            return
        try:
            self._slots.give_back(domain, members)
        except Exception as exc:  # they expire on their own
            self._slots.unavailable(exc)


def make_slots(limit: int, redis_client: Any | None, ttl: float) -> DomainSlots | None:
    """The slots for one batch: none without a limit, shared ones when Redis is there."""
    if not limit:
        return None
    if redis_client is not None:
        return RedisSlots(limit, redis_client, ttl)
    return LocalSlots(limit)
