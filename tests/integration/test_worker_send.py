"""An issue to 1,000 subscribers through a real `digest worker` over Redis and PostgreSQL,
delivered to an SMTP server on 127.0.0.1: everyone gets exactly one copy with their own link.
Four batches are enough to show it; volume is benchmarks/send.py's (100,000 recipients)."""

import re
import time
from collections import Counter
from pathlib import Path

import redis
from sqlalchemy import select

from digest.db import session_scope
from digest.models import Subscriber, Subscription
from tests.conftest import truncate_all
from tests.crash_issue import make_issue
from tests.helpers import parse, parts, read, run_digest
from tests.processes import WorkerProcess, reap
from tests.smtp_server import SMTPServer

RECIPIENTS = 1000
UNSUB = re.compile(r"/u/([A-Za-z0-9_.-]+)")


def test_issue_to_1000_subscribers_through_a_worker(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    truncate_all(pg_url)
    redis.Redis.from_url(redis_url).flushdb()
    issue_id = make_issue(pg_url, RECIPIENTS)
    with SMTPServer() as smtp:
        env = {
            "DIGEST_DATABASE_URL": pg_url,
            "DIGEST_BROKER_URL": redis_url,
            "DIGEST_TRANSPORT": "smtp",
            "DIGEST_SMTP_HOST": "127.0.0.1",
            "DIGEST_SMTP_PORT": str(smtp.port),
            "DIGEST_SECRET_KEY": "test-secret",
            "DIGEST_BATCH_SIZE": "250",  # four batches
        }
        worker = WorkerProcess(env, tmp_path / "worker.log")
        try:
            sent = run_digest("issues", "send", str(issue_id), "--wait", env=env, timeout=240)
            assert sent.returncode == 0, sent.stdout + sent.stderr
            deadline = time.monotonic() + 30
            while len(smtp.messages) < RECIPIENTS and time.monotonic() < deadline:
                time.sleep(0.2)
            worker.stop()
        finally:
            reap([worker])
        print(f"worker delivered {len(smtp.messages)} messages")

    per_rcpt = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert len(per_rcpt) == RECIPIENTS
    assert set(per_rcpt.values()) == {1}, "someone got the issue twice"

    with session_scope(pg_url) as session:
        owner = dict(session.execute(select(Subscription.id, Subscription.subscriber_id)).all())
        emails = dict(session.execute(select(Subscriber.id, Subscriber.email)).all())
    message_ids = set()
    for received in smtp.messages:
        msg = parse(received.data)
        text, html = parts(msg)
        token = UNSUB.search(str(msg["List-Unsubscribe"]))
        assert token is not None
        sub_id = read("unsubscribe", token.group(1), "test-secret")
        # The link in the copy unsubscribes exactly the person it was sent to.
        assert emails[owner[sub_id]] == received.rcpt_tos[0]
        assert token.group(1) in html and token.group(1) in text
        message_ids.add(msg["Message-ID"])
    assert len(message_ids) == RECIPIENTS
