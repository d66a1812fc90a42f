"""Sign-in throttling: a lock-out that doubles past the free failures, per address and per user
name, in this process or shared through the real Redis; Redis down falls back to counting here."""

from __future__ import annotations

import logging

import pytest
import redis

from digest.web.throttle import (
    BY_ADDRESS,
    BY_USER,
    KEY_PREFIX,
    LoginThrottle,
    MemoryStore,
    RedisStore,
    login_throttle,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> MemoryStore | RedisStore:
    if request.param == "memory":
        return MemoryStore()
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    for key in client.scan_iter(f"{KEY_PREFIX}:*"):
        client.delete(key)
    return RedisStore(client)


def test_the_lockout_starts_after_the_free_failures_and_doubles(
    store: MemoryStore | RedisStore,
) -> None:
    clock = Clock()
    throttle = LoginThrottle(store, clock)
    for _ in range(BY_ADDRESS.free - 1):
        throttle.failed("admin", "192.0.2.1")
        assert throttle.retry_after("admin", "192.0.2.1") == 0
    waits = []
    for _ in range(10):
        throttle.failed("admin", "192.0.2.1")
        wait = throttle.retry_after("admin", "192.0.2.1")
        waits.append(wait)
        clock.now += wait  # wait it out exactly, then fail again
        assert throttle.retry_after("admin", "192.0.2.1") == 0
    first = int(BY_ADDRESS.first_lockout)
    assert waits[:5] == [first, 2 * first, 4 * first, 8 * first, 16 * first]
    assert max(waits) == BY_ADDRESS.max_lockout  # capped
    # Another address with another name is not held back by any of it.
    assert throttle.retry_after("editor", "192.0.2.2") == 0


def test_a_success_forgives_the_address_not_the_name(store: MemoryStore | RedisStore) -> None:
    clock = Clock()
    throttle = LoginThrottle(store, clock)
    for i in range(BY_ADDRESS.free - 1):
        throttle.failed("admin", f"198.51.100.{i}")  # a guesser's addresses
    for _ in range(BY_ADDRESS.free - 1):
        throttle.failed("admin", "192.0.2.1")  # the admin's typos
    assert throttle.succeeded("admin", "192.0.2.1") is True  # logged once ...
    assert throttle.succeeded("admin", "192.0.2.1") is False  # ... not on every request
    by_user, by_address = throttle.failed("admin", "192.0.2.1")
    assert by_address == 1  # the address starts again
    assert by_user == 2 * (BY_ADDRESS.free - 1) + 1  # the name's count goes on
    for i in range(BY_USER.free - by_user):
        throttle.failed("admin", f"203.0.113.{i}")
    assert throttle.retry_after("admin", "192.0.2.99") > 0  # the name is locked everywhere


def test_counts_fade_after_a_quiet_day() -> None:
    clock = Clock()
    throttle = LoginThrottle(MemoryStore(), clock)
    for _ in range(BY_ADDRESS.free):
        throttle.failed("admin", "192.0.2.1")
    assert throttle.retry_after("admin", "192.0.2.1") > 0
    clock.now += BY_ADDRESS.forget_after + 1
    assert throttle.retry_after("admin", "192.0.2.1") == 0
    assert throttle.failed("admin", "192.0.2.1") == (1, 1)


def test_redis_down_counts_in_this_process(caplog: pytest.LogCaptureFixture) -> None:
    throttle = login_throttle("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with caplog.at_level(logging.WARNING, logger="digest.web.throttle"):
        for _ in range(BY_ADDRESS.free):
            throttle.failed("admin", "192.0.2.1")
    assert throttle.retry_after("admin", "192.0.2.1") > 0
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # and Redis is not asked again on every request
