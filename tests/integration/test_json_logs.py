"""DIGEST_LOG_FORMAT=json: every line a real send logs is one JSON object with the issue and
delivery ids; a refused recipient's line names its delivery."""

from __future__ import annotations

import json

from sqlalchemy import select

from digest.db import session_scope
from digest.models import Delivery
from tests.conftest import truncate_all
from tests.crash_issue import address, make_issue
from tests.helpers import run_digest
from tests.smtp_server import RecordingHandler, SMTPServer

RECIPIENTS = 20
REFUSED = address(7)


def test_json_log_lines_carry_issue_and_delivery_ids(pg_url: str) -> None:
    truncate_all(pg_url)
    issue_id = make_issue(pg_url, RECIPIENTS)
    handler = RecordingHandler(
        reply=lambda rcpt: "550 5.1.1 no such user" if rcpt == REFUSED else None
    )
    with SMTPServer(handler) as smtp:
        env = {
            "DIGEST_DATABASE_URL": pg_url,
            "DIGEST_TRANSPORT": "smtp",
            "DIGEST_SMTP_HOST": "127.0.0.1",
            "DIGEST_SMTP_PORT": str(smtp.port),
            "DIGEST_SECRET_KEY": "test-secret",
            "DIGEST_LOG_FORMAT": "json",
        }
        done = run_digest("issues", "send", str(issue_id), "--wait", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(smtp.messages) == RECIPIENTS - 1
    with session_scope(pg_url) as session:
        refused_id = session.scalar(select(Delivery.id).where(Delivery.email == REFUSED))

    # The command's own words to its user (a warning: line) stay plain; log records are JSON.
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert lines, "nothing logged"
    for line in lines:
        assert {"event", "level", "logger", "timestamp", "issue_id", "delivery_id"} <= set(line)
    about = [line for line in lines if line["delivery_id"] == refused_id]
    assert about, lines
    assert all(line["issue_id"] == issue_id for line in about)
    assert "failed" in about[0]["event"] and "550" in about[0]["event"]
