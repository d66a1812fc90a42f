"""International addresses end to end: stored with an IDNA domain and shown in Unicode, sent
with SMTPUTF8 only to a relay that offers it (else that one delivery fails with a clear
reason, the address not suppressed), and any per-recipient error fails that delivery only,
over the SMTP transport (aiosmtpd with and without SMTPUTF8, Postfix's smtp-sink) and the
Maildir one. Nothing is left in 'sending'."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.db import get_engine, session_factory
from digest.delivery.maildir import MaildirTransport
from digest.delivery.recipient import Recipient
from digest.delivery.send import send_batch, send_issue_inline
from digest.delivery.smtp import SmtpTransport
from digest.delivery.smtp_client import NO_SMTPUTF8, SmtpConfig
from digest.delivery.transports import Render, SendResult
from digest.migrate import alembic_config, upgrade
from digest.models import Delivery, Issue, Subscriber
from digest.subscribers.service import add_subscriber, export_csv, import_csv
from digest.subscribers.suppression import is_suppressed
from tests.flows import (
    ISSUE_HEADERS,
    deliveries,
    header_names,
    listening,
    maildir_copies,
    news_list,
    parse_copy,
    planned_issue,
)
from tests.helpers import run_digest
from tests.processes import wait_until
from tests.smtp_server import Received, RecordingHandler, SMTPServer, free_port

# (as typed, name, as stored)
PEOPLE = [
    ("plain@example.org", "Plain Person", "plain@example.org"),
    ("x@bücher.example", "Zoë Ünïcode", "x@xn--bcher-kva.example"),
    ("b@BÜCHER.example", 'Bob "the" Builder, Jr.', "b@xn--bcher-kva.example"),
    ("ädä@bücher.example", "Ädä", "ädä@xn--bcher-kva.example"),
    ("用户@例え.テスト", "", "用户@xn--r8jz45g.xn--zckzah"),
]
ASCII = [stored for _, _, stored in PEOPLE if stored.isascii()]
UTF8 = [stored for _, _, stored in PEOPLE if not stored.isascii()]


def _issue(session: Session) -> int:
    lst = news_list(session)
    for typed, name, _ in PEOPLE:
        add_subscriber(session, lst.id, typed, name)
    session.commit()
    return planned_issue(session, lst.id)


def _check_copy(data: bytes, stored: str, name: str) -> None:
    assert header_names(data) == ISSUE_HEADERS  # nothing injected, nothing lost
    msg = parse_copy(data)
    (to,) = msg["To"].addresses
    assert to.addr_spec == stored
    assert "".join(to.display_name.split()) == "".join(name.split())
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() == stored.isascii()  # raw UTF-8 only for an address that has it


def _send(db_url: str, issue_id: int, server: SMTPServer) -> list[Received]:
    """Send the issue in-process through an aiosmtpd server; what it received."""
    with server, SmtpTransport(SmtpConfig(port=server.port, timeout=10)) as transport:
        send_issue_inline(session_factory(db_url), issue_id, transport, get_settings())
    return server.messages


def _settled(session: Session, issue_id: int) -> dict[str, Delivery]:
    rows = deliveries(session, issue_id)
    assert not [d for d in rows.values() if d.status in ("pending", "sending")]
    assert session.scalar(select(Issue.status).where(Issue.id == issue_id)) == "sent"
    return rows


def test_addresses_are_stored_with_an_idna_domain_and_shown_in_unicode(
    session: Session, db_url: str
) -> None:
    lst = news_list(session)
    for typed, name, _ in PEOPLE[:3]:
        add_subscriber(session, lst.id, typed, name)
    rows = "".join(f"{typed},{name}\n" for typed, name, _ in PEOPLE[3:])  # no quotes there
    result = import_csv(session, lst.id, io.StringIO("email,name\n" + rows + "a\ufffd@x.org,\n"))
    assert result.added == 2 and [line for line, _ in result.errors] == [4]
    assert "U+FFFD" in result.errors[0][1]
    session.commit()
    stored = set(session.scalars(select(Subscriber.email)))
    assert stored == {s for _, _, s in PEOPLE}
    out = io.StringIO()
    export_csv(session, lst.id, out)
    assert "x@bücher.example" in out.getvalue() and "xn--" not in out.getvalue()

    env = {"DIGEST_DATABASE_URL": db_url}
    listing = run_digest("subscribers", "list", "--list", "news", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "x@bücher.example" in listing.stdout and "用户@例え.テスト" in listing.stdout
    assert "xn--" not in listing.stdout
    added = run_digest("subscribers", "add", "zoé@bücher.example", "--list", "news", env=env)
    assert added.returncode == 0 and "zoé@bücher.example is confirmed" in added.stdout
    for bad in ["a\u202e@example.org", "a\x07@example.org", "a\ufffd@example.org"]:
        refused = run_digest("subscribers", "add", bad, "--list", "news", env=env)
        assert refused.returncode == 2 and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1 and "U+" in refused.stderr


def test_a_relay_without_smtputf8_gets_idna_domains_and_no_utf8_local_part(
    session: Session, db_url: str
) -> None:
    issue_id = _issue(session)
    # aiosmtpd without SMTPUTF8 answers a UTF-8 path "500 strict ASCII mode", as Postfix 501s.
    received = _send(db_url, issue_id, SMTPServer(enable_SMTPUTF8=False))
    by_rcpt = {m.rcpt_tos[0]: m for m in received}
    assert sorted(by_rcpt) == sorted(ASCII)
    for _, name, stored in PEOPLE:
        if stored in by_rcpt:
            _check_copy(by_rcpt[stored].data, stored, name)
            assert by_rcpt[stored].mail_options == []
    rows = _settled(session, issue_id)
    for address in UTF8:
        assert rows[address].status == "failed" and rows[address].last_error == NO_SMTPUTF8
        assert not is_suppressed(session, address)


def test_a_relay_with_smtputf8_gets_every_copy(session: Session, db_url: str) -> None:
    issue_id = _issue(session)
    received = _send(db_url, issue_id, SMTPServer(enable_SMTPUTF8=True))
    by_rcpt = {m.rcpt_tos[0]: m for m in received}
    assert sorted(by_rcpt) == sorted(s for _, _, s in PEOPLE)
    for _, name, stored in PEOPLE:
        _check_copy(by_rcpt[stored].data, stored, name)
        # SMTPUTF8 only where the address needs it.
        assert ("SMTPUTF8" in by_rcpt[stored].mail_options) == (not stored.isascii())
    _settled(session, issue_id)


def test_a_command_syntax_reply_fails_the_delivery_without_suppressing(
    session: Session, db_url: str
) -> None:
    issue_id = _issue(session)

    def reply(address: str) -> str | None:
        return "501 5.1.3 Bad recipient address syntax" if address == "plain@example.org" else None

    received = _send(db_url, issue_id, SMTPServer(RecordingHandler(reply=reply)))
    rows = _settled(session, issue_id)
    assert rows["plain@example.org"].status == "failed"
    assert "501" in (rows["plain@example.org"].last_error or "")
    assert not is_suppressed(session, "plain@example.org")
    assert len(received) == len(PEOPLE) - 1


def _break_rows(session: Session, issue_id: int) -> dict[str, str]:
    """Rows no longer valid (written before validation, or by hand): each must fail alone.
    Returns the broken address -> what it was."""
    broken = {
        "bad address@example.org": "plain@example.org",
        "b@bücher..example": "b@xn--bcher-kva.example",  # an empty label: no IDNA form
        "a\r\nRCPT TO:<victim@example.org>": "ädä@xn--bcher-kva.example",
    }
    for bad, was in broken.items():
        session.execute(
            update(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.email == was)
            .values(email=bad)
        )
    # A row stored before domains were kept in IDNA, with a name formataddr choked on.
    session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.email == "x@xn--bcher-kva.example")
        .values(email="x@bücher.example", name="Xavier")
    )
    session.commit()
    return broken


@pytest.mark.parametrize("transport_kind", ["maildir", "smtp"])
def test_a_broken_recipient_fails_alone_and_the_batch_goes_on(
    session: Session, db_url: str, tmp_path: Path, transport_kind: str
) -> None:
    issue_id = _issue(session)
    broken = _break_rows(session, issue_id)
    sf = session_factory(db_url)
    if transport_kind == "maildir":
        maildir = MaildirTransport(tmp_path / "out")
        send_issue_inline(sf, issue_id, maildir, get_settings())
        maildir.close()
        copies = {c.envelope_to: c.data for c in maildir_copies(tmp_path / "out")}
    else:
        received = _send(db_url, issue_id, SMTPServer(enable_SMTPUTF8=True))
        copies = {m.rcpt_tos[0]: m.data for m in received}
        assert all(len(m.rcpt_tos) == 1 for m in received)
    # The row with a Unicode domain goes out in IDNA form, with its name.
    assert sorted(copies) == ["x@xn--bcher-kva.example", "用户@xn--r8jz45g.xn--zckzah"]
    _check_copy(copies["x@xn--bcher-kva.example"], "x@xn--bcher-kva.example", "Xavier")
    rows = _settled(session, issue_id)
    for bad in broken:
        assert rows[bad].status == "failed"
        assert "could not build this copy" in (rows[bad].last_error or "")
        assert not is_suppressed(session, bad)


def _sink(port: int, dumps: Path) -> subprocess.Popen[bytes]:
    """Postfix's smtp-sink, capturing each transaction (it announces no SMTPUTF8)."""
    dumps.chmod(0o777)  # smtp-sink drops to nobody when run as root
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    return subprocess.Popen(
        [sink, *user, "-d", f"{dumps}/%M.", f"127.0.0.1:{port}", "64"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.service  # Postfix's smtp-sink
@pytest.mark.skipif(
    shutil.which("smtp-sink") is None and not Path("/usr/sbin/smtp-sink").exists(),
    reason="Postfix's smtp-sink is not installed",
)
def test_postfix_smtp_sink_gets_ascii_envelopes_only(
    session: Session, db_url: str, tmp_path: Path
) -> None:
    issue_id = _issue(session)
    port = free_port()
    # Not under tmp_path: pytest's base directory is private, and nobody must write here.
    dumps = Path(tempfile.mkdtemp(prefix="digest-sink-"))
    sink = _sink(port, dumps)
    try:
        wait_until(lambda: listening(port), 10, what="smtp-sink to listen")
        with SmtpTransport(SmtpConfig(port=port, timeout=10)) as transport:
            send_issue_inline(session_factory(db_url), issue_id, transport, get_settings())
        wait_until(lambda: len(list(dumps.iterdir())) >= len(ASCII), 10, what="the dumps")
    finally:
        sink.terminate()
        sink.wait(10)
        dumped = [d.read_bytes() for d in sorted(dumps.iterdir())]
        shutil.rmtree(dumps)
    rcpts = []
    for dump in dumped:
        lines = dump.split(b"\n")
        # The copy's VERP return path, and no SMTPUTF8 parameter.
        args = [line for line in lines if line.startswith(b"X-Mail-Args: ")]
        assert len(args) == 1
        assert re.fullmatch(rb"X-Mail-Args: <bounces\+\d+-[a-z2-7]{10}@example\.org>", args[0])
        rcpts += [line.split(b" ", 1)[1].decode() for line in lines if line.startswith(b"X-Rcpt")]
    assert sorted(rcpts) == sorted(f"<{a}>" for a in ASCII)
    rows = _settled(session, issue_id)
    assert [rows[a].last_error for a in UTF8] == [NO_SMTPUTF8] * len(UTF8)


def test_the_upgrade_moves_unicode_domains_to_idna(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0002")
    with get_engine(url).begin() as conn:
        for table, email in [
            ("subscribers", "x@bücher.example"),
            ("suppressions", "y@bücher.example"),
            ("suppressions", "z@bücher.example"),
            ("suppressions", "z@xn--bcher-kva.example"),
        ]:
            extra = ", name, attributes" if table == "subscribers" else ", reason, detail"
            values = ", '', '{}'" if table == "subscribers" else ", 'bounce', ''"
            conn.execute(
                text(
                    f"INSERT INTO {table} (email{extra}, created_at) "
                    f"VALUES (:e{values}, CURRENT_TIMESTAMP)"
                ),
                {"e": email},
            )
    upgrade(url)
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT email FROM subscribers")).scalars().all() == [
            "x@xn--bcher-kva.example"
        ]
        suppressed = conn.execute(text("SELECT email FROM suppressions ORDER BY email"))
        assert suppressed.scalars().all() == ["y@xn--bcher-kva.example", "z@xn--bcher-kva.example"]


class StopsMidBatch(MaildirTransport):
    """The Maildir transport with a fault injected: it dies after its second copy, as a bug
    in a transport would (per-recipient errors come back as results instead)."""

    def _deliver(self, envelope_from: str, recipient: Recipient, render: Render) -> SendResult:
        self.done = getattr(self, "done", 0) + 1
        if self.done > 2:
            raise RuntimeError("transport bug")
        return super()._deliver(envelope_from, recipient, render)


def test_a_transport_that_stops_mid_batch_leaves_nothing_in_sending(
    session: Session, db_url: str, tmp_path: Path
) -> None:
    issue_id = _issue(session)
    transport = StopsMidBatch(tmp_path / "out")
    result = send_batch(session_factory(db_url), issue_id, "owner", transport, get_settings())
    transport.close()
    # The two copies it wrote were never reported: like a crash, they go again (the only
    # duplicates there can be, recognisable by their Message-ID); nothing waits for a lease.
    assert result.retried == len(PEOPLE) and len(maildir_copies(tmp_path / "out")) == 2
    rows = deliveries(session, issue_id).values()
    assert {(d.status, d.last_error) for d in rows} == {
        ("pending", "batch stopped: RuntimeError: transport bug")
    }
