"""Prometheus metrics: counters the services move, and gauges read from the store at scrape.

The counters and the histogram are made on first use (`metrics()`), so a process that serves
several processes' metrics (a Celery worker and its pool: `use_multiprocess`) can choose
prometheus-client's multiprocess mode before any value exists. Nothing here serves HTTP: the
web app and `digest worker` expose `registry()` themselves.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# An SMTP transaction (MAIL FROM to the reply after DATA), in seconds.
SMTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    deliveries: Counter  # outcome (sent, retry, failed, deferred), transport
    smtp_seconds: Histogram  # transport
    batches_claimed: Counter
    lease_expiries: Counter  # rows claimed again because their holder's lease ran out
    pauses: Counter  # reason: errors (the issue paused itself), manual
    bounces: Counter  # class: hard, soft, complaint
    fetches: Counter  # outcome: new, unchanged, not_modified, error


def observe_many(child: Histogram, amounts: Sequence[float]) -> None:
    """Observe every amount in one histogram child: the same buckets and sum as observing
    each, but one write per bucket touched instead of two a value (each write checks the pid
    and takes a lock; in multiprocess mode it writes a shared file). Reaches into
    prometheus-client's child (its bounds and values, stable since 0.4); without them it
    observes one by one."""
    if not amounts:
        return
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            child.observe(amount)
        return
    counts = [0] * len(bounds)
    for amount in amounts:  # the first bound >= amount, as observe() picks (the last is +Inf)
        counts[bisect_left(bounds, amount)] += 1
    total.inc(math.fsum(amounts))
    for bucket, n in zip(buckets, counts, strict=True):
        if n:
            bucket.inc(n)


@lru_cache(maxsize=1)
def metrics() -> Metrics:
    return Metrics(
        deliveries=Counter(
            "digest_deliveries",
            "Delivery attempts by outcome and transport.",
            ["outcome", "transport"],
        ),
        smtp_seconds=Histogram(
            "digest_smtp_round_trip_seconds",
            "One message's SMTP transaction, MAIL FROM to the reply after DATA.",
            ["transport"],
            buckets=SMTP_BUCKETS,
        ),
        batches_claimed=Counter(
            "digest_batches_claimed", "Batches of deliveries claimed by a sender."
        ),
        lease_expiries=Counter(
            "digest_lease_expiries",
            "Deliveries claimed again because the lease of their previous holder ran out.",
        ),
        pauses=Counter("digest_pauses", "Issues paused, by reason.", ["reason"]),
        bounces=Counter("digest_bounces", "Bounces and complaints processed, by class.", ["class"]),
        fetches=Counter("digest_collection_fetches", "Source fetches by outcome.", ["outcome"]),
    )


def use_multiprocess(directory: str) -> None:
    """Count in files under `directory`, shared by this process and the ones it forks (a
    Celery worker's pool). Call before the first `metrics()`."""
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def registry(*live: Collector) -> CollectorRegistry:
    """What a /metrics endpoint serves: every process's counters when in multiprocess mode,
    else this process's, plus the `live` collectors (read at each scrape)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        served = CollectorRegistry()
        multiprocess.MultiProcessCollector(served, path=directory)  # type: ignore[no-untyped-call]
    else:
        served = CollectorRegistry()
        metrics()  # registers the counters with the default registry
        served.register(_Forward(REGISTRY))
    for collector in live:
        served.register(collector)
    return served


def exposition(served: CollectorRegistry) -> bytes:
    return generate_latest(served)


class _Forward(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()
