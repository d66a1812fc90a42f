"""The gauges a /metrics endpoint reads from the stores at each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from digest.models import utcnow
from digest.sources.due import oldest_due_since

# The Celery queues (workers/app.py routes tasks to them): Redis keeps each as a list.
QUEUES = ("default", "collect", "send")


def redis_client(url: str | None) -> Any | None:
    """A client for the broker's queues, or None when the broker is not Redis."""
    if not url or not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=2.0)


class LiveCollector(Collector):
    """Gauges read at each scrape: the age of the oldest due source (from the database) and
    the depth of each broker queue (Redis lists named as the queues). A store that cannot
    be read leaves its gauge out and says so in `digest_scrape_errors`."""

    def __init__(
        self,
        session: Callable[[], Session],
        redis_client: Any | None = None,
        queues: Sequence[str] = (),
    ) -> None:
        self.session = session
        self.redis = redis_client
        self.queues = tuple(queues)

    def collect(self) -> Iterable[Metric]:
        errors = GaugeMetricFamily(
            "digest_scrape_errors", "Stores the last scrape could not read.", labels=["store"]
        )
        now = utcnow()
        try:
            with self.session() as session:
                oldest = oldest_due_since(session, now)
        except Exception:
            errors.add_metric(["database"], 1)
        else:
            age = max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
            yield GaugeMetricFamily(
                "digest_oldest_due_source_age_seconds",
                "How long the longest-waiting due source has been due (0: none due).",
                value=age,
            )
        if self.redis is not None and self.queues:
            depth = GaugeMetricFamily(
                "digest_queue_depth", "Tasks waiting in each broker queue.", labels=["queue"]
            )
            try:
                for name in self.queues:
                    depth.add_metric([name], float(self.redis.llen(name)))
            except Exception:
                errors.add_metric(["broker"], 1)
            else:
                yield depth
        yield errors
