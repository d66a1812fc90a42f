"""Rate limits counted in-process: fixed UTC windows per second, hour and day; a limiter's
grants are good only within the window they were taken in."""

from __future__ import annotations

import asyncio

from digest.delivery.ratelimit import LocalCounter, RateLimit, RateLimiter

T0 = 1_700_000_000.0  # a whole second, 8:53:20 UTC on 14 Nov 2023


def grant(counter: LocalCounter, wanted: int, now: float) -> tuple[int, float]:
    return asyncio.run(counter.take(wanted, now))


def test_no_limits_is_falsy_and_windows_are_ordered() -> None:
    assert not RateLimit()
    limit = RateLimit(per_second=5, per_day=100)
    assert limit and [w[0] for w in limit.windows()] == ["second", "day"]


def test_per_second_window_grants_up_to_the_limit_then_says_when_it_reopens() -> None:
    counter = LocalCounter(RateLimit(per_second=5))
    assert grant(counter, 3, T0 + 0.2) == (3, 0.0)
    granted, wait = grant(counter, 3, T0 + 0.5)
    assert granted == 2 and abs(wait - 0.5) < 1e-9  # partial grant: the window is spent
    granted, wait = grant(counter, 1, T0 + 0.75)
    assert granted == 0 and abs(wait - 0.25) < 1e-9
    assert grant(counter, 5, T0 + 1.0) == (5, 0.0)  # a new second


def test_the_tightest_window_wins() -> None:
    counter = LocalCounter(RateLimit(per_second=10, per_hour=12))
    assert grant(counter, 10, T0)[0] == 10
    assert grant(counter, 10, T0 + 1)[0] == 2
    granted, wait = grant(counter, 1, T0 + 2)
    hour_end = (int(T0) // 3600 + 1) * 3600
    assert granted == 0 and abs(wait - (hour_end - T0 - 2)) < 1e-6


def test_per_day_is_a_utc_calendar_day() -> None:
    counter = LocalCounter(RateLimit(per_day=3))
    midnight = (int(T0) // 86400 + 1) * 86400
    assert grant(counter, 3, midnight - 1)[0] == 3
    assert grant(counter, 1, midnight - 0.5)[0] == 0
    assert grant(counter, 1, midnight)[0] == 1


def test_limiter_sleeps_for_short_waits_and_defers_long_ones() -> None:
    now = [T0 + 0.9]

    def clock() -> float:
        return now[0]

    limiter = RateLimiter(RateLimit(per_second=2), LocalCounter(RateLimit(per_second=2)),
                          block=1, clock=clock)  # fmt: skip

    async def run() -> list[float]:
        out = [await limiter.acquire(1.0), await limiter.acquire(1.0)]
        # The window is spent for 0.1 s: too long to wait for with max_wait 0.05.
        out.append(await limiter.acquire(0.05))
        now[0] = T0 + 1.0
        out.append(await limiter.acquire(0.05))
        return out

    results = asyncio.run(run())
    assert results[:2] == [0.0, 0.0]
    assert 0.09 < results[2] <= 0.1 + 1e-9
    assert results[3] == 0.0


def test_unused_grants_expire_with_their_window() -> None:
    """A block taken in one second is not spent in the next, so a per-second limit holds
    however many processes take blocks."""
    now = [T0]
    counter = LocalCounter(RateLimit(per_second=100))
    limiter = RateLimiter(RateLimit(per_second=100), counter, block=10, clock=lambda: now[0])

    async def take(n: int) -> None:
        for _ in range(n):
            assert await limiter.acquire(0) == 0.0

    asyncio.run(take(3))  # one block of 10 taken, 7 left unused
    now[0] = T0 + 1
    asyncio.run(take(1))  # a fresh block is taken in the new second
    assert grant(counter, 1000, T0 + 1)[0] == 90
