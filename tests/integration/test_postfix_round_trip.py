"""A real MTA round trip: an issue goes through a private Debian Postfix on 127.0.0.1 into a
Maildir, signed by the app with DKIM (checked with dkimpy on what Postfix delivered); the copy
for an address Postfix does not know comes back as Postfix's DSN to its VERP return path,
through `digest inbound serve`, and suppresses exactly that address."""

from __future__ import annotations

import base64
import mailbox
import subprocess
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.dkim import DkimSigner
from digest.delivery.send import send_issue_inline
from digest.delivery.smtp import SmtpTransport
from digest.delivery.smtp_client import SmtpConfig
from digest.migrate import upgrade
from digest.models import DeliveryEvent, Subscription, Suppression
from digest.subscribers.service import add_subscriber
from tests.flows import listening, news_list, planned_issue
from tests.helpers import DIGEST, clean_env
from tests.postfix import private_postfix
from tests.processes import wait_until
from tests.smtp_server import free_port

SIGNED = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
]


def _rsa_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def _verify(message: bytes, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.example.org."
        return record

    return bool(dkim.verify(message, dnsfunc=dns))


def test_postfix_round_trip_dkim_and_dsn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file, record = _rsa_key(tmp_path)
    url = f"sqlite:///{tmp_path / 'round.db'}"
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    monkeypatch.setenv("DIGEST_DKIM_KEY_FILE", str(key_file))
    monkeypatch.setenv("DIGEST_DKIM_SELECTOR", "news")
    reset_settings()
    upgrade(url)
    sf = session_factory(url)
    with sf() as session:
        lst = news_list(session)
        for email in ("ada@example.net", "bob@example.net", "nobody@example.net"):
            add_subscriber(session, lst.id, email)
        issue_id = planned_issue(session, lst.id)
    inbound_port = free_port()
    env = clean_env({"DIGEST_DATABASE_URL": url, "DIGEST_SECRET_KEY": "test-secret"})
    listener = subprocess.Popen(
        [DIGEST, "inbound", "serve", "--port", str(inbound_port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: listening(inbound_port), 30, what="the inbound listener")
        with private_postfix(["ada", "bob"], "example.org", inbound_port) as postfix:
            with SmtpTransport(SmtpConfig(port=postfix.port, timeout=30)) as transport:
                totals = send_issue_inline(sf, issue_id, transport, get_settings())
            assert totals.sent == 3, postfix.log  # Postfix takes all three, then bounces one

            def suppressed() -> set[str]:
                with sf() as session:
                    return set(session.scalars(select(Suppression.email)))

            wait_until(lambda: suppressed(), 60, what="the DSN through digest inbound")
            for user in ("ada", "bob"):
                box = mailbox.Maildir(postfix.maildir(user), factory=None, create=False)
                (key,) = list(box.iterkeys())
                delivered = box.get_bytes(key).replace(b"\n", b"\r\n")
                assert delivered.startswith(b"Return-Path: <bounces+"), delivered[:200]
                assert _verify(delivered, record), f"DKIM signature of {user}'s copy"
                head = delivered.split(b"\r\n\r\n", 1)[0].decode()
                signature = head.split("DKIM-Signature:", 1)[1].split("\r\n\r\n")[0]
                h_tag = "".join(signature.split("h=", 1)[1].split(";", 1)[0].split()).lower()
                assert set(SIGNED) <= set(h_tag.split(":"))
                tampered = delivered.replace(b"Subject: ", b"Subject: X", 1)
                assert not _verify(tampered, record)
    finally:
        listener.terminate()
        listener.wait(15)
    assert suppressed() == {"nobody@example.net"}
    with sf() as session:
        statuses = {
            s.subscriber.email: s.status.value for s in session.scalars(select(Subscription))
        }
        (event,) = session.scalars(select(DeliveryEvent)).all()
    assert statuses == {
        "ada@example.net": "confirmed",
        "bob@example.net": "confirmed",
        "nobody@example.net": "bounced",
    }
    assert (event.verdict.value, event.matched, event.email) == ("hard", True, "nobody@example.net")


def test_ed25519_signatures_verify() -> None:
    import nacl.signing

    key = nacl.signing.SigningKey.generate()
    signer = DkimSigner(base64.b64encode(bytes(key)), "news", "example.org")
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key))
    data = (
        b"From: a@example.org\r\nTo: b@example.net\r\nSubject: Hi\r\nDate: Tue, 1 Dec 2026 "
        b"09:00:00 +0000\r\nMessage-ID: <x@example.org>\r\nList-Unsubscribe: <https://e/u/x>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n..dotted line\r\nHello\r\n"
    )
    signed = signer.sign(data)
    assert signed.endswith(data)  # the DATA-ready copy is untouched, the field in front
    assert _verify(signed.replace(b"\r\n..", b"\r\n."), record)
    assert not _verify(signed.replace(b"Hello", b"Hullo").replace(b"\r\n..", b"\r\n."), record)
