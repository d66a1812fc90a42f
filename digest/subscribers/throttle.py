"""Throttles for what strangers can trigger (sign-up posts, confirmation mails).

Fixed windows counted in Redis when one is configured (the rate-limit Redis, else a Redis
broker), so every web process and worker shares them; else in the database. Every hit counts,
allowed or not, so a client that keeps posting stays throttled. Keys are hashed: the counters
hold no address or IP in clear.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import is_postgres
from digest.models import ThrottleCounter, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "digest:throttle"
REDIS_TIMEOUT = 2.0

# KEYS: one counter per window; ARGV: a (limit, ttl) pair per key. 1 when every count is
# within its limit after this hit.
_HIT = """
local allowed = 1
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, tonumber(ARGV[2 * i])) end
  if n > tonumber(ARGV[2 * i - 1]) then allowed = 0 end
end
return allowed
"""


@dataclass(frozen=True, slots=True)
class Window:
    seconds: int
    limit: int


class Throttle(Protocol):
    def hit(self, key: str, windows: Sequence[Window]) -> bool:
        """Count one hit on `key` in each window; True when every window is within its limit."""
        ...


def hashed(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode('utf-8')).hexdigest()[:32]}"


def client_key(host: str) -> str:
    """Whom a client address stands for: an IPv6 client controls its whole /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class DatabaseThrottle:
    """Counters in `throttle_counters`: one upsert per window, in the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def hit(self, key: str, windows: Sequence[Window]) -> bool:
        now = time.time()
        insert = postgresql.insert if is_postgres(self.session) else sqlite.insert
        allowed = True
        for window in windows:
            start = int(now) // window.seconds * window.seconds
            expires = datetime.fromtimestamp(start + window.seconds, UTC).replace(tzinfo=None)
            values = insert(ThrottleCounter).values(
                key=f"{key}:{window.seconds}", window_start=start, count=1, expires_at=expires
            )
            stmt = values.on_conflict_do_update(
                index_elements=["key", "window_start"],
                set_={"count": ThrottleCounter.count + 1},
            ).returning(ThrottleCounter.count)
            count = self.session.execute(stmt).scalar_one()
            allowed = allowed and count <= window.limit
        return allowed


class RedisThrottle:
    """Counters in Redis; when Redis does not answer, the database's (and a warning)."""

    def __init__(self, client: Any, fallback: DatabaseThrottle) -> None:
        self._script = client.register_script(_HIT)
        self.fallback = fallback

    def hit(self, key: str, windows: Sequence[Window]) -> bool:
        import redis

        now = int(time.time())
        keys = [f"{KEY_PREFIX}:{key}:{w.seconds}:{now // w.seconds}" for w in windows]
        args: list[int] = []
        for w in windows:
            args += [w.limit, w.seconds + 60]
        try:
            return bool(self._script(keys=keys, args=args))
        except redis.RedisError as exc:
            log.warning("throttle: Redis failed (%s); counting in the database", exc)
            return self.fallback.hit(key, windows)


@lru_cache(maxsize=4)
def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
    )


def make_throttle(settings: Settings, session: Session) -> Throttle:
    database = DatabaseThrottle(session)
    url = settings.shared_redis_url
    return RedisThrottle(_redis_client(url), database) if url else database


def prune_counters(session: Session) -> int:
    """Forget database counters whose window is over."""
    stmt = delete(ThrottleCounter).where(ThrottleCounter.expires_at < utcnow())
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
