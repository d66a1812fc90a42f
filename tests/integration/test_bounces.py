"""Returned mail in the shapes real mail systems send it: each reaches the policy's decision,
and only for a copy we sent (its VERP return path or Message-ID, checked with the key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.delivery.message import MessageTemplate, unstuff
from digest.delivery.recipient import Recipient
from digest.models import (
    Delivery,
    DeliveryEvent,
    FeedbackAction,
    Issue,
    Subscription,
    Suppression,
    Verdict,
    utcnow,
)
from digest.subscribers.feedback import (
    InboundContext,
    inbound_context,
    paused_domains,
    process_inbound,
)
from digest.subscribers.reports import read_report
from digest.subscribers.service import add_subscriber
from digest.tokens import Signer
from tests import bounce_corpus as corpus
from tests.flows import news_list, planned_issue
from tests.helpers import configured_keys

READERS = ["ada@example.net", "bob@example.net", "cy@example.com"]


class Mailbox:
    """An issue planned for READERS, and the copies as we would send them."""

    def __init__(self, session: Session) -> None:
        self.session = session
        lst = news_list(session)
        for email in READERS:
            add_subscriber(session, lst.id, email)
        self.issue_id = planned_issue(session, lst.id)
        issue = session.get_one(Issue, self.issue_id)
        assert issue.message_template is not None
        self.template = MessageTemplate.from_bytes(
            issue.message_template, Signer(configured_keys())
        )
        rows = session.scalars(select(Delivery).where(Delivery.issue_id == self.issue_id))
        self.deliveries = {d.email: d for d in rows}
        self.context: InboundContext = inbound_context(session, get_settings())

    def sent(self, email: str) -> corpus.Sent:
        d = self.deliveries[email]
        recipient = Recipient(d.id, d.subscription_id, d.email, d.name)
        copy = unstuff(self.template.personalise(recipient)).decode()
        headers = copy.split("\r\n\r\n", 1)[0]
        return corpus.Sent(email, self.template.return_path(recipient), headers)

    def receive(self, raw: bytes, rcpts: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
        result = process_inbound(self.session, raw, self.context, envelope_recipients=rcpts)
        self.session.flush()
        self.session.expire_all()
        return result

    def status(self, email: str) -> str:
        return str(
            self.session.scalar(
                select(Subscription.status).where(
                    Subscription.id == self.deliveries[email].subscription_id
                )
            )
        )

    def suppressed(self) -> dict[str, str]:
        return {s.email: s.reason.value for s in self.session.scalars(select(Suppression))}


@pytest.fixture
def box(session: Session) -> Mailbox:
    return Mailbox(session)


def test_each_copy_has_its_own_return_path_and_message_id(box: Mailbox) -> None:
    paths = {box.sent(e).return_path for e in READERS}
    assert len(paths) == 3
    for email in READERS:
        sent = box.sent(email)
        d = box.deliveries[email]
        assert sent.return_path.startswith(f"bounces+{d.id}-")
        assert sent.return_path.endswith("@example.org")
        assert f"<d{d.id}." in sent.headers and f".i{box.issue_id}." in sent.headers


HARD_FORMATS: dict[str, Callable[[corpus.Sent], bytes]] = {
    "postfix": corpus.postfix,
    "exim": corpus.exim,
    "exchange": corpus.exchange,
    "gmail": corpus.gmail,
    "yahoo": corpus.yahoo,
    "ses": corpus.ses,
}


@pytest.mark.parametrize("name", sorted(HARD_FORMATS))
def test_a_hard_bounce_suppresses_exactly_that_reader(box: Mailbox, name: str) -> None:
    result = box.receive(HARD_FORMATS[name](box.sent("ada@example.net")))
    assert (result.verdict, result.matched) == (Verdict.HARD, True), name
    assert box.suppressed() == {"ada@example.net": "bounce"}
    assert box.status("ada@example.net") == "bounced"
    assert box.status("bob@example.net") == "confirmed"
    event = box.session.scalars(select(DeliveryEvent)).one()
    assert event.delivery_id == box.deliveries["ada@example.net"].id
    assert event.issue_id == box.issue_id and event.action == FeedbackAction.SUPPRESSED


@pytest.mark.parametrize("name", sorted(HARD_FORMATS))
def test_a_bounce_that_names_no_delivery_of_ours_changes_nothing(box: Mailbox, name: str) -> None:
    """The same report for a real reader, but about a copy we did not send (a plain return
    path, Message-ID from elsewhere) or with a forged mark: recorded as unmatched only."""
    real = box.sent("ada@example.net")
    d = box.deliveries["ada@example.net"]
    forged_mark = real.return_path.replace(f"+{d.id}-", f"+{d.id}-").split("-", 1)[0]
    for sent in (
        corpus.Sent(
            real.rcpt,
            "bounces@example.org",
            "Message-ID: <x1@elsewhere.example>\r\nTo: ada@example.net",
        ),
        corpus.Sent(
            real.rcpt, f"{forged_mark}-aaaaaaaaaa@example.org", "Message-ID: <d1.i1@example.org>"
        ),
    ):
        result = box.receive(HARD_FORMATS[name](sent))
        assert result.matched is False, name
    assert box.suppressed() == {}
    assert box.status("ada@example.net") == "confirmed"
    events = list(box.session.scalars(select(DeliveryEvent)))
    assert events and all(not e.matched and e.action == FeedbackAction.NONE for e in events)


def test_the_quoted_message_id_alone_finds_the_delivery(box: Mailbox) -> None:
    """A report sent to a plain address (not the VERP one) still names our copy."""
    real = box.sent("bob@example.net")
    sent = corpus.Sent(real.rcpt, "bounces@example.org", real.headers)
    result = box.receive(corpus.postfix(sent))
    assert (result.matched, result.delivery_id) == (True, box.deliveries["bob@example.net"].id)
    assert box.suppressed() == {"bob@example.net": "bounce"}


def test_a_message_id_of_another_installation_is_not_ours(box: Mailbox) -> None:
    real = box.sent("bob@example.net")
    other = real.headers.replace(f".{box.template.message_id_part}@", ".0123456789ab@")
    result = box.receive(corpus.postfix(corpus.Sent(real.rcpt, "bounces@example.org", other)))
    assert result.matched is False and box.suppressed() == {}


def test_soft_bounces_suppress_after_three_in_the_window(box: Mailbox) -> None:
    sent = box.sent("bob@example.net")
    for n in (1, 2):
        result = box.receive(corpus.sendmail(sent))  # 552 5.2.2 mailbox full
        assert result.verdict == Verdict.SOFT
        assert box.suppressed() == {}, n
        assert box.status("bob@example.net") == "confirmed"
    box.receive(corpus.ses(sent, full=True))
    assert box.suppressed() == {"bob@example.net": "bounce"}
    assert box.status("bob@example.net") == "bounced"


def test_soft_bounces_outside_the_window_do_not_count(box: Mailbox) -> None:
    sent = box.sent("bob@example.net")
    box.receive(corpus.sendmail(sent))
    box.receive(corpus.sendmail(sent))
    old = utcnow() - timedelta(days=31)
    for event in box.session.scalars(select(DeliveryEvent)):
        event.created_at = old
    box.session.flush()
    box.receive(corpus.sendmail(sent))
    assert box.suppressed() == {}


@pytest.mark.parametrize(
    "make",
    [
        lambda s: corpus.gmail(s, dmarc_block=True),
        lambda s: corpus.exchange(s, blocked=True),
    ],
    ids=["gmail-5.7.26", "o365-spamhaus"],
)
def test_blocks_never_suppress(box: Mailbox, make: Callable[[corpus.Sent], bytes]) -> None:
    result = box.receive(make(box.sent("ada@example.net")))
    assert (result.verdict, result.matched) == (Verdict.BLOCK, True)
    assert box.suppressed() == {} and box.status("ada@example.net") == "confirmed"


def test_blocks_at_a_rate_pause_the_destination_domain(box: Mailbox) -> None:
    limit = get_settings().domain_block_limit
    actions = [
        box.receive(corpus.gmail(box.sent(e), dmarc_block=True)).actions[0]
        for e in ["ada@example.net", "bob@example.net"] * (limit // 2)
    ]
    assert actions[:-1] == [FeedbackAction.NONE] * (limit - 1)
    assert actions[-1] == FeedbackAction.DOMAIN_PAUSED
    assert set(paused_domains(box.session)) == {"example.net"}
    assert box.suppressed() == {}


def test_arf_abuse_and_jmrp_unsubscribe_and_suppress(box: Mailbox) -> None:
    assert box.receive(corpus.arf(box.sent("ada@example.net"))).verdict == Verdict.COMPLAINT
    assert box.receive(corpus.jmrp(box.sent("bob@example.net"))).verdict == Verdict.COMPLAINT
    assert box.suppressed() == {"ada@example.net": "complaint", "bob@example.net": "complaint"}
    assert box.status("ada@example.net") == box.status("bob@example.net") == "complained"
    assert box.status("cy@example.com") == "confirmed"


def test_arf_opt_out_only_unsubscribes(box: Mailbox) -> None:
    result = box.receive(corpus.arf(box.sent("ada@example.net"), "opt-out"))
    assert result.verdict == Verdict.OPT_OUT and result.actions == (FeedbackAction.UNSUBSCRIBED,)
    assert box.status("ada@example.net") == "unsubscribed" and box.suppressed() == {}


@pytest.mark.parametrize(
    ("make", "verdict"),
    [
        (lambda s: corpus.arf(s, "auth-failure"), Verdict.AUTH_FAILURE),
        (corpus.auto_reply, Verdict.AUTO_REPLY),
        (corpus.postfix_delay, Verdict.DELAY),
    ],
    ids=["dmarc-auth-failure", "auto-reply", "delay"],
)
def test_recorded_but_never_acted_on(
    box: Mailbox, make: Callable[[corpus.Sent], bytes], verdict: Verdict
) -> None:
    result = box.receive(make(box.sent("ada@example.net")))
    assert (result.verdict, result.matched, result.acted) == (verdict, True, False)
    assert box.suppressed() == {} and box.status("ada@example.net") == "confirmed"
    event = box.session.scalars(select(DeliveryEvent)).one()
    assert event.verdict == verdict and event.issue_id == box.issue_id


def test_a_syntax_error_of_ours_never_suppresses(box: Mailbox) -> None:
    sent = box.sent("ada@example.net")
    raw = corpus.postfix(sent, "5.5.2", "501 5.5.2 Syntax error in parameters")
    assert box.receive(raw).verdict == Verdict.OURS
    assert box.suppressed() == {}


def test_junk_addresses_are_never_taken_for_readers() -> None:
    sent = corpus.Sent("undisclosed-recipients:;", "bounces@example.org", "To: x")
    report = read_report(corpus.postfix(sent))
    assert report.failures == []
    piped = corpus.Sent('"|/usr/bin/evil"@example.org', "bounces@example.org", "To: x")
    assert read_report(corpus.postfix(piped)).failures == []
    json_bit = corpus.Sent('{"rcpt": null}', "bounces@example.org", "To: x")
    assert read_report(corpus.exim(json_bit)).failures == []


def test_ordinary_mail_and_garbage_change_nothing(box: Mailbox) -> None:
    plain = EmailMessage()
    plain["Subject"] = "Thanks for the newsletter"
    plain.set_content("Loved it")
    assert box.receive(plain.as_bytes()).verdict == Verdict.OTHER
    assert box.receive(b"\x00\xff not mail at all").matched is False
    assert box.suppressed() == {}
    assert box.session.scalar(select(func.count()).select_from(DeliveryEvent)) == 2


def test_mailto_unsubscribe_as_a_mail_client_sends_it(box: Mailbox) -> None:
    """The List-Unsubscribe mailto: of a copy, sent as a mail client does: To the address,
    the subject from the URL, an empty body."""
    d = box.deliveries["cy@example.com"]
    copy = unstuff(box.template.personalise(Recipient(d.id, d.subscription_id, d.email)))
    header = next(
        line for line in copy.decode().split("\r\n") if line.startswith("List-Unsubscribe:")
    )
    mailto = header.split("<mailto:", 1)[1].split(">", 1)[0]
    to, _, query = mailto.partition("?")
    subject = query.removeprefix("subject=")
    msg = EmailMessage()
    msg["From"] = "Cy <cy@example.com>"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("")
    result = box.receive(msg.as_bytes(), (to,))
    assert (result.verdict, result.actions) == (Verdict.UNSUBSCRIBE, (FeedbackAction.UNSUBSCRIBED,))
    assert box.status("cy@example.com") == "unsubscribed"
    assert box.suppressed() == {}
    forged = EmailMessage()
    forged["To"] = to
    forged["Subject"] = subject[:-3] + "xyz"
    forged.set_content("")
    before = box.status("ada@example.net")
    assert box.receive(forged.as_bytes()).matched is False
    assert box.status("ada@example.net") == before


RELAY_ANSWERS = {
    "ada@example.net": "550 5.1.1 <ada@example.net>: Recipient address rejected: User unknown",
    "bob@example.net": "550 5.7.1 Message rejected as spam by Content Filtering",
    "cy@example.com": "552 5.2.2 Mailbox full",
}


def test_the_relays_answers_at_send_time_follow_the_same_policy(box: Mailbox, db_url: str) -> None:
    from digest.db import session_factory
    from digest.delivery.send import send_issue_inline
    from digest.delivery.smtp import SmtpTransport
    from digest.delivery.smtp_client import SmtpConfig
    from tests.smtp_server import RecordingHandler, SMTPServer

    box.session.commit()
    handler = RecordingHandler(reply=lambda rcpt: RELAY_ANSWERS.get(rcpt.strip("<>")))
    with (
        SMTPServer(handler) as relay,
        SmtpTransport(SmtpConfig(port=relay.port, timeout=10)) as transport,
    ):
        totals = send_issue_inline(session_factory(db_url), box.issue_id, transport, get_settings())
    assert totals.failed == 3
    box.session.expire_all()
    assert box.suppressed() == {"ada@example.net": "bounce"}  # only the hard one
    assert box.status("bob@example.net") == box.status("cy@example.com") == "confirmed"
    events = {e.email: e for e in box.session.scalars(select(DeliveryEvent))}
    assert {e: (v.verdict.value, v.via.value, v.matched) for e, v in events.items()} == {
        "ada@example.net": ("hard", "relay", True),
        "bob@example.net": ("block", "relay", True),
        "cy@example.com": ("soft", "relay", True),
    }
    assert events["bob@example.net"].status == "5.7.1"


def test_a_paused_domain_waits_untried(box: Mailbox, db_url: str) -> None:
    from digest.db import session_factory
    from digest.delivery.maildir import MaildirTransport
    from digest.delivery.send import send_issue_inline
    from digest.subscribers.feedback import pause_domain, resume_domain

    until = utcnow() + timedelta(hours=1)
    pause_domain(box.session, "example.net", until, "blocks")
    box.session.commit()
    transport = MaildirTransport(get_settings().outbox_dir)
    totals = send_issue_inline(session_factory(db_url), box.issue_id, transport, get_settings())
    assert (totals.sent, totals.deferred) == (1, 2)  # cy@example.com only
    box.session.expire_all()
    waiting = box.session.scalars(
        select(Delivery).where(Delivery.issue_id == box.issue_id, Delivery.status == "pending")
    ).all()
    assert {d.email for d in waiting} == {"ada@example.net", "bob@example.net"}
    assert all(
        d.next_attempt_at and d.next_attempt_at >= until - timedelta(seconds=5) for d in waiting
    )
    assert all("destination domain paused" in (d.last_error or "") for d in waiting)
    assert resume_domain(box.session, "example.net") and not paused_domains(box.session)
