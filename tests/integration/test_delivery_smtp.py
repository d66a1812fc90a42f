"""The SMTP transport against real SMTP servers on 127.0.0.1: aiosmtpd (plain, pipelining,
STARTTLS, implicit TLS, AUTH PLAIN/LOGIN, scripted 421/451/550 replies, server down) and,
when installed, Postfix's smtp-sink for volume."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.ledger import issue_progress
from digest.delivery.message import MessageTemplate, build_template
from digest.delivery.recipient import Recipient
from digest.delivery.send import BatchResult, send_batch, send_issue_inline
from digest.delivery.smtp import IDLE_CHECK_SECONDS, SmtpTransport
from digest.delivery.smtp_client import SmtpConfig, SmtpConnection
from digest.metrics import metrics
from digest.models import Delivery, Issue
from digest.placeholders import Slots
from digest.subscribers.suppression import is_suppressed
from tests.helpers import signer
from tests.integration.test_delivery_send import check_copies, parse, ready_issue
from tests.smtp_server import BoundController, free_port

USER, PASSWORD = "mailer", "s3cret-pässword"


@dataclass
class Handler:
    """Keeps what it receives; answers RCPT TO from a script: address -> replies in turn."""

    pipelining: bool = True
    script: dict[str, list[str]] = field(default_factory=dict)
    received: list[tuple[str, bytes]] = field(default_factory=list)
    rcpt_seen: Counter[str] = field(default_factory=Counter)
    ehlos: int = 0  # sessions opened

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpt_seen[address] += 1
        replies = self.script.get(address)
        if replies:
            reply = replies.pop(0)
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, envelope.original_content))
        return "250 2.0.0 queued"


def server_tls(certs: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*certs)
    return ctx


def client_tls(certs: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs[0]))  # verifies chain and 127.0.0.1


MECHANISMS: list[str] = []


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    MECHANISMS.append(mechanism)
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """Start an aiosmtpd server on 127.0.0.1: `start(handler, **controller_kwargs) -> port`."""
    controllers: list[Controller] = []

    def start(handler: Handler, **kw: Any) -> int:
        controller = BoundController(handler, **kw)
        controller.start()
        controllers.append(controller)
        return int(controller.port)

    yield start
    for c in controllers:
        c.stop()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_RETRY_BASE_SECONDS", "0")
    reset_settings()


def send_all(db_url: str, issue_id: int, transport: SmtpTransport) -> BatchResult:
    try:
        return send_issue_inline(
            session_factory(db_url),
            issue_id,
            transport,
            get_settings(),
            size=40,
            wait_for_retries=True,
            max_wait_seconds=20,
        )
    finally:
        transport.close()


def received(handler: Handler) -> list[tuple[str, Any]]:
    return [(rcpt, parse(data)) for rcpt, data in handler.received]


def test_plain_pipelined_send_with_451_and_550(
    session: Session, db_url: str, smtp_server: Any, fast_retries: None
) -> None:
    issue_id = ready_issue(session, 60, others=False, names=["Zoë", "<b>Bob & Co</b>"])
    handler = Handler(
        script={
            "p3@news.example.com": ["451 4.3.0 greylisted"],
            "p7@news.example.com": ["451 4.3.0 greylisted", "451 4.3.0 still greylisted"],
            "p11@news.example.com": ["421 4.3.2 closing, try later"],
            "p9@news.example.com": ["550 5.1.1 no such user"],
        }
    )
    port = smtp_server(handler)
    transport = SmtpTransport(SmtpConfig(port=port, timeout=10), connections=3)
    totals = send_all(db_url, issue_id, transport)

    assert totals.sent == 59 and totals.failed == 1 and totals.retried == 4
    check_copies(session, issue_id, received(handler))
    assert handler.rcpt_seen["p7@news.example.com"] == 3
    assert handler.rcpt_seen["p9@news.example.com"] == 1  # a 5xx is never retried
    session.expire_all()
    failed = session.query(Delivery).filter_by(email="p9@news.example.com").one()
    assert failed.status == "failed" and "550 5.1.1" in (failed.last_error or "")
    assert is_suppressed(session, "p9@news.example.com")
    assert not is_suppressed(session, "p7@news.example.com")
    assert session.query(Delivery).filter_by(email="p7@news.example.com").one().attempts == 3
    issue = session.get(Issue, issue_id)
    assert issue is not None and issue.status == "sent"


def test_without_pipelining_one_command_at_a_time(
    session: Session, db_url: str, smtp_server: Any
) -> None:
    issue_id = ready_issue(session, 10, others=False)
    handler = Handler(pipelining=False, script={"p2@news.example.com": ["550 5.7.1 rejected"]})
    port = smtp_server(handler)
    totals = send_all(db_url, issue_id, SmtpTransport(SmtpConfig(port=port), connections=2))
    assert totals == BatchResult(claimed=10, sent=9, retried=0, failed=1)
    check_copies(session, issue_id, received(handler))


def test_starttls_with_auth_plain_and_login(
    session: Session, db_url: str, smtp_server: Any, certs: tuple[Path, Path]
) -> None:
    issue_id = ready_issue(session, 12, others=False)
    handler = Handler()
    port = smtp_server(
        handler,
        tls_context=server_tls(certs),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    for mechanism, n in (("PLAIN", 6), ("LOGIN", 6)):
        config = SmtpConfig(
            port=port,
            security="starttls",
            username=USER,
            password=PASSWORD,
            ssl_context=client_tls(certs),
            auth_mechanism=mechanism,  # type: ignore[arg-type]
        )
        transport = SmtpTransport(config, connections=2)
        try:
            result = send_batch(
                session_factory(db_url), issue_id, "w", transport, get_settings(), size=n
            )
        finally:
            transport.close()
        assert result.sent == n
    check_copies(session, issue_id, received(handler))
    assert set(MECHANISMS) == {"PLAIN", "LOGIN"}


def test_wrong_password_and_untrusted_certificate_send_nothing(
    session: Session,
    db_url: str,
    smtp_server: Any,
    certs: tuple[Path, Path],
    fast_retries: None,
) -> None:
    issue_id = ready_issue(session, 3, others=False)
    handler = Handler()
    port = smtp_server(
        handler,
        tls_context=server_tls(certs),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    bad_password = SmtpConfig(
        port=port,
        security="starttls",
        username=USER,
        password="wrong",
        ssl_context=client_tls(certs),
    )
    untrusted = SmtpConfig(port=port, security="starttls", username=USER, password=PASSWORD)
    for config, why in (
        (untrusted, "CERTIFICATE_VERIFY_FAILED"),
        (bad_password, "AUTH PLAIN: 535"),
    ):
        transport = SmtpTransport(config)
        try:
            result = send_batch(session_factory(db_url), issue_id, "w", transport, get_settings())
        finally:
            transport.close()
        assert result.sent == 0 and result.retried == 3
        session.expire_all()
        errors = [d.last_error or "" for d in session.query(Delivery).filter_by(issue_id=issue_id)]
        assert all(why in e for e in errors), errors
    assert handler.received == []


def test_implicit_tls(
    session: Session, db_url: str, smtp_server: Any, certs: tuple[Path, Path]
) -> None:
    issue_id = ready_issue(session, 5, others=False)
    handler = Handler()
    port = smtp_server(
        handler,
        ssl_context=server_tls(certs),
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,  # aiosmtpd counts only STARTTLS as TLS; this session is all TLS
    )
    config = SmtpConfig(
        port=port, security="tls", username=USER, password=PASSWORD, ssl_context=client_tls(certs)
    )
    assert send_all(db_url, issue_id, SmtpTransport(config)).sent == 5
    check_copies(session, issue_id, received(handler))


def test_server_down_pauses_the_issue(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_PAUSE_AFTER_ERRORS", "10")
    reset_settings()
    issue_id = ready_issue(session, 30, others=False)
    transport = SmtpTransport(SmtpConfig(port=free_port(), timeout=2), connections=4)
    pauses = metrics().pauses.labels(reason="errors")
    before = pauses._value.get()
    result = send_all(db_url, issue_id, transport)
    assert result.sent == 0 and result.retried >= 10
    assert pauses._value.get() == before + 1  # digest_pauses_total{reason="errors"}
    session.expire_all()
    issue = session.get(Issue, issue_id)
    assert issue is not None and issue.status == "paused" and issue.consecutive_errors >= 10
    progress = issue_progress(session, issue_id)
    assert progress.sent == 0 and progress.pending + progress.sending == 30
    errors = {
        d.last_error for d in session.query(Delivery).filter_by(issue_id=issue_id) if d.last_error
    }
    assert errors and all("no SMTP session" in e for e in errors)


def test_sessions_are_reused_across_batches(smtp_server: Any) -> None:
    """Connections stay open between batches; an idle one that died is replaced."""
    handler = Handler()
    port = smtp_server(handler)
    template = build_template(
        signer=signer(),
        issue_id=1, subject="s", html_body="<p>h</p>", text_body="t", slots=Slots.new(),
        list_slug="l", list_name="L",
        from_name="F", from_email="f@example.org", public_url="https://x.example.org",
    )  # fmt: skip
    transport = SmtpTransport(SmtpConfig(port=port), connections=2)
    idle = transport.routes[0].idle
    try:
        for batch in range(4):
            if batch == 3:
                # One idle session dies (its socket is closed under it) and has been idle long
                # enough to be checked: the NOOP fails and a fresh session takes its place.
                dead = idle[0]
                assert dead._transport is not None
                dead._transport.abort()
                dead.last_used -= IDLE_CHECK_SECONDS
            recipients = [
                Recipient(batch * 10 + i, i, f"r{batch}-{i}@example.com") for i in range(10)
            ]
            results = [
                r
                for chunk in transport.send("b@example.org", recipients, template.personalise)
                for r in chunk
            ]
            assert sorted(r.delivery_id for r in results) == [r.delivery_id for r in recipients]
            assert {r.outcome for r in results} == {"sent"}
            assert len(idle) == 2
            if batch == 0:
                first = set(idle)
            if batch < 3:
                assert set(idle) == first and handler.ehlos == 2  # the same two sessions
        assert dead not in idle and len(set(idle) & first) == 1 and handler.ehlos == 3
        assert all(isinstance(conn, SmtpConnection) and conn.pipelining for conn in idle)
    finally:
        transport.close()
    assert len(handler.received) == 40


def smtp_sink(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    proc = subprocess.Popen(
        [sink, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{port}", "256"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("smtp-sink did not start")


@pytest.mark.service  # Postfix's smtp-sink
@pytest.mark.skipif(
    shutil.which("smtp-sink") is None and not Path("/usr/sbin/smtp-sink").exists(),
    reason="Postfix's smtp-sink is not installed",
)
def test_volume_through_smtp_sink(tmp_path: Path) -> None:
    """2,000 personalised ~40 KB messages through smtp-sink over 8 pipelined sessions.
    Prints the rate; benchmark figures belong in benchmarks/send.py, not in asserts."""
    port = free_port()
    proc = smtp_sink(port, tmp_path)
    template = MessageTemplate.from_bytes(
        build_template(
            signer=signer(),
            issue_id=9,
            subject="Volume",
            html_body="<p>news item words</p>\n" * 1700,
            text_body="t " * 2000,
            slots=Slots.new(),
            list_slug="v",
            list_name="V",
            from_name="F",
            from_email="f@example.org",
            public_url="https://x.example.org",
        ).to_bytes(),
        signer(),
    )
    n = 2000
    recipients = [Recipient(i, i, f"r{i}@example.com", f"R {i}") for i in range(n)]
    transport = SmtpTransport(SmtpConfig(port=port), connections=8)
    try:
        started = time.perf_counter()
        results = [
            r
            for chunk in transport.send("b@example.org", recipients, template.personalise)
            for r in chunk
        ]
        seconds = time.perf_counter() - started
    finally:
        transport.close()
        proc.terminate()
        proc.wait(timeout=10)
    assert len(results) == n and {r.outcome for r in results} == {"sent"}
    assert len({r.delivery_id for r in results}) == n
    size = len(template.personalise(recipients[0]))
    print(f"smtp-sink: {n} messages of {size} bytes in {seconds:.2f}s = {n / seconds:.0f} msg/s")
