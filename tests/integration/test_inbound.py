"""`digest inbound`: returned mail through the real listener (SMTP and LMTP) and a Maildir,
each applied to the delivery it names; `digest bounces events` shows what happened."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.config import reset_settings
from digest.db import session_factory
from digest.delivery.message import MessageTemplate, unstuff
from digest.delivery.recipient import Recipient
from digest.migrate import upgrade
from digest.models import Delivery, Issue, Subscription, Suppression
from digest.subscribers.service import add_subscriber
from digest.tokens import Signer
from tests import bounce_corpus as corpus
from tests.flows import listening, news_list, planned_issue
from tests.helpers import DIGEST, clean_env, configured_keys, run_digest
from tests.processes import wait_until
from tests.smtp_server import free_port


@pytest.fixture
def store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, corpus.Sent]]]:
    """A SQLite store with an issue planned for two readers, and their copies."""
    url = f"sqlite:///{tmp_path / 'inbound.db'}"
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    reset_settings()
    upgrade(url)
    sf = session_factory(url)
    sent: dict[str, corpus.Sent] = {}
    with sf() as session:
        lst = news_list(session)
        for email in ("ada@example.net", "bob@example.net"):
            add_subscriber(session, lst.id, email)
        issue_id = planned_issue(session, lst.id)
        issue = session.get_one(Issue, issue_id)
        assert issue.message_template is not None
        template = MessageTemplate.from_bytes(issue.message_template, Signer(configured_keys()))
        for d in session.scalars(select(Delivery)):
            r = Recipient(d.id, d.subscription_id, d.email)
            head = unstuff(template.personalise(r)).decode().split("\r\n\r\n", 1)[0]
            sent[d.email] = corpus.Sent(d.email, template.return_path(r), head)
        session.commit()
    yield url, sent


def _state(url: str) -> tuple[dict[str, str], set[str]]:
    with session_factory(url)() as session:
        statuses = {
            s.subscriber.email: s.status.value for s in session.scalars(select(Subscription))
        }
        return statuses, set(session.scalars(select(Suppression.email)))


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_the_listener_applies_a_bounce_sent_to_the_return_path(
    store: tuple[str, dict[str, corpus.Sent]], lmtp: bool, tmp_path: Path
) -> None:
    url, sent = store
    port = free_port()
    env = clean_env({"DIGEST_DATABASE_URL": url, "DIGEST_SECRET_KEY": "test-secret"})
    args = [DIGEST, "inbound", "serve", "--port", str(port), *(["--lmtp"] if lmtp else [])]
    proc = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: listening(port), 30, what="the inbound listener")
        ada = sent["ada@example.net"]
        client: smtplib.SMTP = (
            smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port)
        )
        with client:
            # Mail for a domain that is not ours is refused at RCPT.
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("", ["someone@elsewhere.example"], b"Subject: x\r\n\r\nx\r\n")
            client.sendmail("", [ada.return_path], corpus.postfix(ada))
        wait_until(lambda: "ada@example.net" in _state(url)[1], 30, what="the suppression")
    finally:
        proc.terminate()
        proc.wait(15)
    statuses, suppressed = _state(url)
    assert suppressed == {"ada@example.net"}
    assert statuses == {"ada@example.net": "bounced", "bob@example.net": "confirmed"}
    events = run_digest(
        "bounces", "events", "--json", env={"DIGEST_DATABASE_URL": url}, cwd=tmp_path
    )
    assert events.returncode == 0, events.stderr
    (record,) = [json.loads(line) for line in events.stdout.splitlines()]
    assert (record["verdict"], record["action"], record["email"]) == (
        "hard",
        "suppressed",
        "ada@example.net",
    )
    assert record["matched"] is True and record["issue"] == 1


def test_maildir_applies_new_mail_once_and_survives_junk(
    store: tuple[str, dict[str, corpus.Sent]], tmp_path: Path
) -> None:
    url, sent = store
    box = tmp_path / "returned"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1").write_bytes(corpus.arf(sent["bob@example.net"]))
    (box / "new" / "2").write_bytes(b"\x00\xffjunk")
    (box / "new" / "3").write_bytes(corpus.postfix_delay(sent["ada@example.net"]))
    env = {"DIGEST_DATABASE_URL": url, "DIGEST_SECRET_KEY": "test-secret"}
    result = run_digest("inbound", "maildir", str(box), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 messages:" in result.stdout and "1 complaint" in result.stdout
    assert "1 acted on" in result.stdout
    assert sorted(os.listdir(box / "new")) == [] and len(os.listdir(box / "cur")) == 3
    statuses, suppressed = _state(url)
    assert suppressed == {"bob@example.net"}
    assert statuses == {"ada@example.net": "confirmed", "bob@example.net": "complained"}
    again = run_digest("inbound", "maildir", str(box), env=env, cwd=tmp_path)
    assert again.returncode == 0 and "0 acted on" in again.stdout  # cur/ is read, nothing new
    missing = run_digest("inbound", "maildir", str(tmp_path / "nope"), env=env, cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    by_issue = run_digest("bounces", "events", "--issue", "1", env=env, cwd=tmp_path)
    assert "complaint" in by_issue.stdout and "bob@example.net" in by_issue.stdout


def test_postal_address_from_the_cli(
    store: tuple[str, dict[str, corpus.Sent]], tmp_path: Path
) -> None:
    url, _ = store
    env = {"DIGEST_DATABASE_URL": url}
    done = run_digest("lists", "postal-address", "news", "1 High St\\nTown", env=env, cwd=tmp_path)
    assert done.returncode == 0 and "1 High St, Town" in done.stdout
    shown = run_digest("lists", "show", "news", env=env, cwd=tmp_path)
    assert "postal_address: 1 High St\nTown" in shown.stdout
    bad = run_digest("lists", "postal-address", "news", "x\u202ey", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
