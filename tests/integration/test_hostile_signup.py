"""Sign-up cannot be abused, and hostile input never reaches a subscriber's mail.

The corpus in tests/fixtures/hostile/signup runs sign-up -> confirm -> compose -> approve ->
delivery over a real SMTP conversation on SQLite and PostgreSQL, checking the bytes delivered.
Then: one answer for every state of an address, throttles per address and per client (in the
database and in Redis), a stopped subscription that stays stopped, no mail I/O on the request
path (a relay that never answers does not slow the answer), and the Celery path.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.send import send_issue_inline
from digest.delivery.smtp import SmtpTransport
from digest.delivery.smtp_client import SmtpConfig
from digest.models import SignupRequest, Subscriber, Subscription, ThrottleCounter
from digest.subscribers.actions import unsubscribe
from digest.subscribers.addresses import display_email
from digest.subscribers.service import add_subscriber
from digest.subscribers.suppression import suppress
from digest.web.app import create_app
from tests.conftest import truncate_all
from tests.flows import ISSUE_HEADERS, header_names, listening, news_list, parse_copy, planned_issue
from tests.helpers import DIGEST, clean_env, run_digest, token
from tests.processes import WorkerProcess, reap, wait_until
from tests.smtp_server import Received, SMTPServer, free_port

CORPUS = Path(__file__).parents[1] / "fixtures" / "hostile" / "signup"
POSTS: list[dict[str, Any]] = json.loads((CORPUS / "posts.json").read_text())
ADDRESSES: list[dict[str, Any]] = json.loads((CORPUS / "addresses.json").read_text())
LINK = re.compile(r"/c/([A-Za-z0-9_.-]+)")
CONFIRMATION_HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
}


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[SMTPServer]:
    """An aiosmtpd relay offering SMTPUTF8, which the settings send through."""
    with SMTPServer(enable_SMTPUTF8=True) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", "smtp")
        monkeypatch.setenv("DIGEST_SMTP_PORT", str(server.port))
        monkeypatch.setenv("DIGEST_SMTP_TIMEOUT", "10")
        reset_settings()
        yield server


def _client(**kw: Any) -> TestClient:
    # TestClient returns once the background tasks have run: the confirmation is sent by then.
    return TestClient(create_app(), follow_redirects=False, **kw)


def _confirmations(server: SMTPServer) -> list[Received]:
    return [m for m in server.messages if b"\r\nSubject: Confirm your subscription" in m.data]


def _answer(page: httpx.Response, address: str | None) -> str:
    """The page with the echoed address taken out: what must not differ between cases."""
    body = page.text
    return body.replace(html.escape(address), "ADDRESS") if address else body


def _token(message: Received) -> str:
    body = parse_copy(message.data).get_body(("plain",))
    assert body is not None
    found = LINK.search(str(body.get_content()))
    assert found is not None
    return found.group(1)


def test_hostile_posts_end_to_end(
    session: Session, db_url: str, relay: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SIGNUP_CLIENT_PER_HOUR", "1000")
    reset_settings()
    lst = news_list(session)
    session.commit()
    client = _client()
    answers = set()
    for case in POSTS:
        data = {"email": case["email"], "name": case["name"], "website": case.get("website", "")}
        for _ in range(case.get("repeat", 1)):
            page = client.post("/s/news", data=data)
            what = case["case"]
            if case["expect"] == "bad-request":
                assert page.status_code == 400, what
            elif case["expect"] == "rejected":
                assert page.status_code == 422, what
                assert case["reason"].lower() in page.text.lower(), what
                assert "Check your inbox" not in page.text
            else:
                assert page.status_code == 200, what
                assert "<script>alert" not in page.text
                answers.add(_answer(page, display_email(case["stored"])))
    assert len(answers) == 1, "an accepted post's page depends on more than the address"

    accepted = [c for c in POSTS if c["expect"] == "accepted" and not c.get("bot")]
    stored = {c["stored"] for c in accepted}
    confirmations = _confirmations(relay)
    per_address = Counter(m.rcpt_tos[0] for m in confirmations)
    assert per_address == dict.fromkeys(stored, 1), "one confirmation per address, no other"
    for message in confirmations:
        (rcpt,) = message.rcpt_tos
        assert set(header_names(message.data)) == CONFIRMATION_HEADERS
        assert parse_copy(message.data)["To"].addresses[0].addr_spec == rcpt
        assert ("SMTPUTF8" in message.mail_options) == (not rcpt.isascii())
        assert "Confirm your subscription" in client.post(f"/c/{_token(message)}").text
    session.expire_all()
    assert "bot@example.org" not in set(session.scalars(select(Subscriber.email)))

    issue_id = planned_issue(session, lst.id)
    with SmtpTransport(SmtpConfig(port=relay.port, timeout=10)) as transport:
        totals = send_issue_inline(session_factory(db_url), issue_id, transport, get_settings())
    assert totals.sent == len(stored) and totals.failed == 0
    copies = {m.rcpt_tos[0]: m for m in relay.messages if m not in confirmations}
    assert set(copies) == stored and all(len(m.rcpt_tos) == 1 for m in copies.values())
    for case in accepted:
        copy = copies[case["stored"]]
        assert header_names(copy.data) == ISSUE_HEADERS, case["case"]  # nothing injected
        (to,) = parse_copy(copy.data)["To"].addresses
        assert to.addr_spec == case["stored"]
        assert "".join(to.display_name.split()) == "".join(case["to_name"].split())
        assert ("SMTPUTF8" in copy.mail_options) == bool(case.get("smtputf8"))
        assert re.fullmatch(r"bounces\+\d+-[a-z2-7]{10}@example\.org", copy.mail_from)


def test_hostile_addresses_through_import_and_add(session: Session, db_url: str) -> None:
    lst = news_list(session)
    session.commit()
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["email", "name"])
    for row in ADDRESSES:
        writer.writerow([row["email"], row["name"]])
    path = Path("hostile.csv")
    path.write_text(rows.getvalue(), encoding="utf-8")
    env = {"DIGEST_DATABASE_URL": db_url}
    imported = run_digest("subscribers", "import", str(path), "--list", "news", env=env)
    assert imported.returncode == 0, imported.stderr
    errors = imported.stderr.strip().splitlines()
    rejected = [r for r in ADDRESSES if "reason" in r]
    assert len(errors) == len(rejected)
    for line, row in zip(errors, rejected, strict=True):
        assert row["reason"].lower() in line.lower() and line.isprintable()
    session.expire_all()
    stored = set(session.scalars(select(Subscriber.email)))
    assert stored == {r["stored"] for r in ADDRESSES if "stored" in r}
    names = dict(session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names["eve@example.org"] == "Eve Bcc: victim@example.net"
    for row in rejected[:3]:
        added = run_digest("subscribers", "add", row["email"], "--list", lst.slug, env=env)
        assert added.returncode == 2 and row["reason"].lower() in added.stderr.lower()
        assert len(added.stderr.strip().splitlines()) == 1


def test_every_state_gets_the_same_answer_and_only_a_new_address_gets_mail(
    session: Session, db_url: str, relay: SMTPServer
) -> None:
    lst = news_list(session)
    add_subscriber(session, lst.id, "confirmed@example.org")
    add_subscriber(session, lst.id, "pending@example.org", status="pending")
    gone = add_subscriber(session, lst.id, "left@example.org")
    unsubscribe(session, gone.id, via="web")
    add_subscriber(session, lst.id, "bounced@example.org", status="bounced")
    suppress(session, "bounced@example.org", "bounce")
    suppress(session, "blocked@example.org", "complaint")
    session.commit()
    client = _client()
    pages = {}
    for address in [
        "new@example.org",
        "confirmed@example.org",
        "pending@example.org",
        "left@example.org",
        "bounced@example.org",
        "blocked@example.org",
    ]:
        pages[address] = client.post("/s/news", data={"email": address, "name": "X"})
    pages["honeypot"] = client.post(
        "/s/news", data={"email": "bot@example.org", "website": "http://spam.example"}
    )
    pages["again"] = client.post("/s/news", data={"email": "new@example.org"})
    answers = {
        (
            p.status_code,
            _answer(p, "bot@example.org" if k == "honeypot" else k.replace("again", "")),
        )
        for k, p in pages.items()
    }
    answers = {(s, a.replace("new@example.org", "ADDRESS")) for s, a in answers}
    assert len(answers) == 1 and next(iter(answers))[0] == 200
    mailed = sorted(m.rcpt_tos[0] for m in _confirmations(relay))
    # A pending one is asked again (within its throttle); a stopped one is asked, stays stopped.
    assert mailed == ["left@example.org", "new@example.org", "pending@example.org"]
    session.expire_all()
    statuses = dict(
        session.execute(
            select(Subscriber.email, Subscription.status).join(
                Subscription, Subscription.subscriber_id == Subscriber.id
            )
        ).all()
    )
    assert statuses == {
        "confirmed@example.org": "confirmed",
        "pending@example.org": "pending",
        "left@example.org": "unsubscribed",
        "bounced@example.org": "bounced",
        "new@example.org": "pending",
    }


def test_a_stopped_subscription_comes_back_only_through_a_new_confirmation(
    session: Session, db_url: str, relay: SMTPServer
) -> None:
    lst = news_list(session)
    subscription = add_subscriber(session, lst.id, "ada@example.org")
    unsubscribe(session, subscription.id, via="web")
    session.commit()
    client = _client()
    # The confirm link of this subscription (as in any earlier confirmation) does nothing yet.
    link = f"/c/{token('confirm', subscription.id)}"
    assert "no longer confirms" in client.post(link).text
    client.post("/s/news", data={"email": "ada@example.org"})
    session.expire_all()
    assert session.get(Subscription, subscription.id).status == "unsubscribed"  # type: ignore[union-attr]
    (mail,) = _confirmations(relay)
    assert f"/c/{_token(mail)}" == link
    assert "Subscription confirmed" in client.post(link).text
    session.expire_all()
    assert session.get(Subscription, subscription.id).status == "confirmed"  # type: ignore[union-attr]


def test_one_address_gets_one_confirmation_however_often_it_is_posted(
    session: Session, db_url: str, relay: SMTPServer
) -> None:
    news_list(session)
    session.commit()
    client = _client()
    for _ in range(20):
        assert client.post("/s/news", data={"email": "victim@example.org"}).status_code == 200
    assert len(_confirmations(relay)) == 1
    session.expire_all()
    outcomes = Counter(session.scalars(select(SignupRequest.outcome)))
    assert outcomes == {"sent": 1, "throttled": 19}


def test_a_client_is_throttled_and_forwarded_for_is_believed_only_from_a_trusted_proxy(
    session: Session, db_url: str, relay: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SIGNUP_CLIENT_PER_HOUR", "3")
    reset_settings()
    news_list(session)
    session.commit()
    client = _client(client=("198.51.100.7", 5000))
    pages = set()
    for n in range(6):  # a forged X-Forwarded-For changes nothing: no proxy is trusted
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        page = client.post("/s/news", data={"email": f"u{n}@example.org"}, headers=headers)
        pages.add((page.status_code, _answer(page, f"u{n}@example.org")))
    assert len(pages) == 1  # throttled posts get the same answer
    assert len(_confirmations(relay)) == 3

    monkeypatch.setenv("DIGEST_TRUSTED_PROXIES", '["198.51.100.0/24"]')
    reset_settings()
    proxied = _client(client=("198.51.100.7", 5000))
    for n in range(4):  # each client behind the proxy has its own count
        headers = {"X-Forwarded-For": f"203.0.113.{n}, 198.51.100.9"}
        proxied.post("/s/news", data={"email": f"p{n}@example.org"}, headers=headers)
    assert len(_confirmations(relay)) == 3 + 4
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ThrottleCounter)) > 0


def test_throttles_count_in_redis_when_one_is_configured(
    session: Session,
    db_url: str,
    relay: SMTPServer,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = redis.Redis.from_url(redis_url)
    for key in store.scan_iter("digest:throttle:*"):
        store.delete(key)
    monkeypatch.setenv("DIGEST_RATE_LIMIT_REDIS_URL", redis_url)
    reset_settings()
    news_list(session)
    session.commit()
    client = _client()
    for _ in range(3):
        client.post("/s/news", data={"email": "victim@example.org"})
    assert len(_confirmations(relay)) == 1
    assert len(list(store.scan_iter("digest:throttle:*"))) >= 3  # client, address per list, day
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ThrottleCounter)) == 0


class HeldRelay:
    """A relay that accepts connections and never answers until released: a mail sent on the
    request path would hold the answer until the SMTP timeout."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def release(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class Server:
    """The app under uvicorn on 127.0.0.1, in a thread: a real server, whose background
    tasks run after the response is sent (TestClient would wait for them)."""

    def __init__(self) -> None:
        # Port 0: the system picks a free port as uvicorn binds it; read back once started.
        config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def __enter__(self) -> Server:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, what="uvicorn to start")
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def post(self, data: dict[str, str]) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        # A new connection each time: no answer waits behind another's background task.
        page = httpx.post(f"http://127.0.0.1:{self.port}/s/news", data=data, timeout=15)
        return page, time.monotonic() - started


def test_the_answer_never_waits_for_the_relay(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = HeldRelay()
    monkeypatch.setenv("DIGEST_TRANSPORT", "smtp")
    monkeypatch.setenv("DIGEST_SMTP_PORT", str(relay.port))
    monkeypatch.setenv("DIGEST_SMTP_TIMEOUT", "60")
    reset_settings()
    lst = news_list(session)
    for n in range(8):
        add_subscriber(session, lst.id, f"known{n}@example.org")
    session.commit()
    times: dict[str, list[float]] = {"new": [], "confirmed": []}
    try:
        with Server() as server:
            for n in range(8):  # interleaved, so load hits both alike
                for kind, address in (
                    ("new", f"new{n}@example.org"),
                    ("confirmed", f"known{n}@example.org"),
                ):
                    page, seconds = server.post({"email": address})
                    assert page.status_code == 200 and "Check your inbox" in page.text
                    times[kind].append(seconds)
            # The mail path is live: confirmations reached the relay, which still holds them.
            wait_until(lambda: relay.held, 20, what="a confirmation to reach the relay")
            relay.release()
    finally:
        relay.release()
    new, known = statistics.median(times["new"]), statistics.median(times["confirmed"])
    print(f"median answer: new {new * 1000:.0f} ms, confirmed {known * 1000:.0f} ms")
    # Sending on the request path would take the relay's 60 s timeout (httpx gives up at 15).
    assert new < known + 0.5 and new < 2 * known + 0.2
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(SignupRequest)) == 16


def test_with_a_broker_a_worker_sends_the_confirmation(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """`digest serve` and `digest worker` as the processes they are in production: the web
    process enqueues the request's id after its commit, a worker mails it."""
    truncate_all(pg_url)
    redis.Redis.from_url(redis_url).flushdb()
    with session_factory(pg_url)() as session:
        news_list(session)
        session.commit()
    port = free_port()
    with SMTPServer() as relay:
        env = {
            "DIGEST_DATABASE_URL": pg_url,
            "DIGEST_BROKER_URL": redis_url,
            "DIGEST_TRANSPORT": "smtp",
            "DIGEST_SMTP_PORT": str(relay.port),
            "DIGEST_SECRET_KEY": "test-secret",
        }
        worker = WorkerProcess(env, tmp_path / "worker.log")
        web = subprocess.Popen(
            [DIGEST, "serve", "--port", str(port)],
            env=clean_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            worker.wait_ready()
            wait_until(lambda: listening(port), 30, what="digest serve to listen")
            page = httpx.post(
                f"http://127.0.0.1:{port}/s/news", data={"email": "ada@example.org"}, timeout=30
            )
            assert page.status_code == 200 and "Check your inbox" in page.text
            wait_until(lambda: _confirmations(relay), 60, what="the worker's confirmation")
            # A request whose enqueue was lost (the broker was down) goes out with the sweep.
            with session_factory(pg_url)() as session:
                session.add(SignupRequest(list_id=1, email="late@example.org", name=""))
                session.commit()
            Celery(broker=redis_url).send_task(
                "workers.tasks.send_confirmations", args=[None], queue="default"
            )
            wait_until(lambda: len(_confirmations(relay)) == 2, 60, what="the sweep")
            worker.stop()
        finally:
            web.terminate()
            web.wait(30)
            reap([worker])
    assert sorted(m.rcpt_tos[0] for m in _confirmations(relay)) == [
        "ada@example.org",
        "late@example.org",
    ]
