"""observe_many gives the histogram observe() would, one value at a time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

from digest.metrics import SMTP_BUCKETS, observe_many

AMOUNTS = [0.0, 0.004, 0.005, 0.0051, 0.01, 0.3, 1.0, 29.9, 30.0, 31.0, 1e9, 0.005]


def histogram_samples(observe: bool) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", ["relay"], buckets=SMTP_BUCKETS, registry=registry)
    child = histogram.labels("a")
    if observe:
        for amount in AMOUNTS:
            child.observe(amount)
    else:
        observe_many(child, AMOUNTS[:5])
        observe_many(child, [])
        observe_many(child, AMOUNTS[5:])
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_same_buckets_count_and_sum_as_observing_each() -> None:
    expected = histogram_samples(observe=True)
    got = histogram_samples(observe=False)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-9, key
    assert got["h_count", ""] == len(AMOUNTS)
    assert got["h_bucket", "0.005"] == 4  # a bound is inclusive, as in observe()
