"""Returned mail: a DSN hard bounce and an ARF complaint suppress the address; junk is harmless."""

from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Event, Subscription, Suppression
from digest.subscribers.bounces import process_report, read_report
from digest.subscribers.lists import create_list
from digest.subscribers.service import add_subscriber

ORIGINAL = (
    "Message-ID: <d42.i7@news.example.org>\r\nTo: ada@example.org\r\nSubject: News\r\n\r\nHello\r\n"
)


def _report(kind: str, headline: str, machine_part: str, recipient: str) -> bytes:
    """A multipart/report as MTAs and feedback loops send them (RFC 3464, RFC 5965)."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        "To: bounces@news.example.org\r\n"
        f"Subject: {headline}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={kind}; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\n"
        f"{headline}\r\n"
        f"--b1\r\nContent-Type: message/{kind}\r\n\r\n{machine_part}\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + ORIGINAL.replace("ada@example.org", recipient)
        + "--b1--\r\n"
    ).encode()


def dsn(recipient: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    machine = (
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
    )
    return _report("delivery-status", "Delivery Status Notification", machine, recipient)


def arf(recipient: str) -> bytes:
    machine = (
        "Feedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n"
    )
    return _report("feedback-report", "Complaint about message", machine, recipient)


def test_hard_bounce_suppresses_and_marks_every_subscription(session: Session) -> None:
    one = create_list(session, slug="one", name="One")
    two = create_list(session, slug="two", name="Two")
    add_subscriber(session, one.id, "ada@example.org")
    add_subscriber(session, two.id, "ada@example.org")
    result = process_report(session, dsn("ada@example.org"))
    assert (result.kind, result.permanent) == ("bounce", ["ada@example.org"])
    # The quoted Message-ID names an issue this store does not have: not linked.
    assert (result.delivery_id, result.issue_id) == (None, None)
    assert set(session.scalars(select(Subscription.status))) == {"bounced"}
    assert session.scalar(select(Suppression.reason)) == "bounce"
    assert session.scalar(select(Event.kind).where(Event.kind == "bounced")) == "bounced"


def test_complaint_suppresses_with_its_own_reason(session: Session) -> None:
    lst = create_list(session, slug="one", name="One")
    add_subscriber(session, lst.id, "bob@example.org")
    result = process_report(session, arf("bob@example.org"))
    assert (result.kind, result.permanent) == ("complaint", ["bob@example.org"])
    assert session.scalar(select(Subscription.status)) == "complained"
    assert session.scalar(select(Suppression.reason)) == "complaint"


def test_a_delayed_notice_does_not_suppress(session: Session) -> None:
    lst = create_list(session, slug="one", name="One")
    add_subscriber(session, lst.id, "cy@example.org")
    result = process_report(session, dsn("cy@example.org", action="delayed", status="4.4.7"))
    assert result.permanent == []
    assert session.scalar(select(Suppression.id)) is None
    assert session.scalar(select(Subscription.status)) == "confirmed"


def test_ordinary_mail_and_garbage_are_not_bounces() -> None:
    plain = EmailMessage()
    plain["Subject"] = "Thanks for the newsletter"
    plain.set_content("Loved it")
    assert read_report(plain.as_bytes()).kind == "none"
    assert read_report(b"\x00\xff not mail at all").kind == "none"


def test_the_copy_we_sent_is_found_by_its_message_id() -> None:
    result = read_report(dsn("ada@example.org"))
    assert (result.delivery_id, result.issue_id) == (42, 7)


def test_cli_imports_a_maildir_and_survives_junk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import run_digest

    env = {"DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    assert run_digest("init", env=env, cwd=tmp_path).returncode == 0
    assert (
        run_digest("lists", "create", "news", "--name", "News", env=env, cwd=tmp_path).returncode
        == 0
    )
    assert (
        run_digest(
            "subscribers", "add", "ada@example.org", "--list", "news", env=env, cwd=tmp_path
        ).returncode
        == 0
    )
    box = tmp_path / "returned" / "new"
    box.mkdir(parents=True)
    (box / "1").write_bytes(dsn("ada@example.org"))
    (box / "2").write_bytes(b"\x00\xffjunk")
    (box / "3").write_bytes(arf("nobody@example.org"))
    result = run_digest("bounces", "import", str(tmp_path / "returned"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 messages: 1 bounces, 1 complaints, 1 not reports" in result.stdout
    listed = run_digest("subscribers", "list", "--list", "news", env=env, cwd=tmp_path)
    assert "bounced" in listed.stdout
    missing = run_digest("bounces", "import", str(tmp_path / "nope"), env=env, cwd=tmp_path)
    assert missing.returncode == 2
