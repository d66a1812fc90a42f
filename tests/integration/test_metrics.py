"""/metrics of a real `digest worker` (its pool's counters summed, prometheus-client's
multiprocess mode) moves while it sends an issue to an SMTP server on 127.0.0.1; the web
app's /metrics reads the live gauges (queue depth, the oldest due source)."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from digest.config import Settings
from digest.web.app import create_app
from tests.conftest import truncate_all
from tests.crash_issue import make_issue
from tests.processes import WorkerProcess, queue_send, reap, wait_until
from tests.smtp_server import SMTPServer, free_port

RECIPIENTS = 2000


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_worker_metrics_move_during_a_real_send(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    truncate_all(pg_url)
    redis.Redis.from_url(redis_url).flushdb()
    issue_id = make_issue(pg_url, RECIPIENTS)
    port = free_port()
    with SMTPServer() as smtp:
        env = {
            "DIGEST_DATABASE_URL": pg_url,
            "DIGEST_BROKER_URL": redis_url,
            "DIGEST_TRANSPORT": "smtp",
            "DIGEST_SMTP_HOST": "127.0.0.1",
            "DIGEST_SMTP_PORT": str(smtp.port),
            "DIGEST_SECRET_KEY": "test-secret",
            "DIGEST_BATCH_SIZE": "100",
            "DIGEST_METRICS_PORT": str(port),
        }
        relay = f"127.0.0.1:{smtp.port}"
        worker = WorkerProcess(env, tmp_path / "worker.log")
        try:
            worker.wait_ready()

            def scrape() -> dict:
                return samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)

            before = scrape()
            assert value(before, "digest_deliveries_total", outcome="sent", transport=relay) == 0
            # The web app, while the issue waits in the queue: the live gauges.
            settings = Settings(database_url=pg_url, broker_url=redis_url)
            web = samples(TestClient(create_app(settings)).get("/metrics").text)
            assert ("digest_queue_depth", (("queue", "send"),)) in web
            # make_issue's source was never fetched: due since it was added.
            assert value(web, "digest_oldest_due_source_age_seconds") > 0

            queue_send(issue_id, env)
            seen: list[float] = []

            def all_sent() -> bool:
                now = scrape()
                seen.append(value(now, "digest_deliveries_total", outcome="sent", transport=relay))
                return seen[-1] >= RECIPIENTS

            wait_until(all_sent, 240, 0.05, "every delivery counted as sent")
            after = scrape()
            worker.stop()
        finally:
            reap([worker])

    assert len(smtp.messages) == RECIPIENTS
    # Counted as they happened: values between none and all were read during the send.
    assert seen == sorted(seen)
    assert any(0 < v < RECIPIENTS for v in seen), seen
    assert value(after, "digest_deliveries_total", outcome="sent", transport=relay) == RECIPIENTS
    assert value(after, "digest_smtp_round_trip_seconds_count", transport=relay) == RECIPIENTS
    assert value(after, "digest_smtp_round_trip_seconds_sum", transport=relay) > 0
    assert value(after, "digest_batches_claimed_total") >= RECIPIENTS / 100
    assert value(after, "digest_lease_expiries_total") == 0
    print({k: v for k, v in after.items() if k[0].startswith("digest_") and "bucket" not in k[0]})
