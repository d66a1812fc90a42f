"""The send path end to end on both stores, into the maildir outbox: every subscriber gets
exactly one message with their own ids; reruns, pauses and cancels send nothing."""

from __future__ import annotations

import mailbox
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from digest.config import get_settings, reset_settings
from digest.db import get_engine, session_factory
from digest.delivery import send as send_module
from digest.delivery.errors import DeliveryError
from digest.delivery.ledger import claim, issue_progress
from digest.delivery.maildir import MaildirTransport
from digest.delivery.prepare import prepare_issue_message
from digest.delivery.recipient import Recipient
from digest.delivery.send import BatchResult, send_batch, send_issue_inline
from digest.delivery.transports import More, Outcome, Render, Sender, SendResult, Transport
from digest.errors import DigestError, NotFound
from digest.models import Delivery, Issue, utcnow
from digest.pipeline import start_sending
from digest.placeholders import Slots
from tests.helpers import read
from tests.integration.test_delivery_ledger import seed_issue
from tests.integration.test_query_counts import statements

P = Slots.new()
HTML = (
    f"<html><body><p>Hi {P.NAME}</p>"
    + "<p>News of the month, with enough words to fold.</p>\n" * 50
    + f'<a href="{P.VIEW_ONLINE_URL}">online</a> <a href="{P.UNSUBSCRIBE_URL}">unsubscribe</a>'
    "</body></html>"
)
TEXT = f"Hi {P.NAME}\n\nNews.\n.\nOnline: {P.VIEW_ONLINE_URL}\nUnsubscribe: {P.UNSUBSCRIBE_URL}\n"


def ready_issue(session: Session, confirmed: int, **kw: object) -> int:
    """An approved, rendered and prepared issue, handed to the senders (planned, sending);
    returns its id."""
    issue_id = seed_issue(session, confirmed, status="approved", **kw)  # type: ignore[arg-type]
    issue = session.get(Issue, issue_id)
    assert issue is not None
    issue.subject = "Nouvelles de février — édition 1"
    issue.html, issue.text, issue.slot_marker = HTML, TEXT, P.marker
    prepare_issue_message(session, issue_id, get_settings())
    start_sending(session, issue_id)
    session.commit()
    return issue_id


def parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def check_copies(session: Session, issue_id: int, messages: list[tuple[str, EmailMessage]]) -> None:
    """Exactly one message per sent delivery, addressed and personalised for it."""
    deliveries = {
        d.email: d
        for d in session.scalars(
            select(Delivery).where(Delivery.issue_id == issue_id, Delivery.status == "sent")
        )
    }
    rcpts = [rcpt for rcpt, _ in messages]
    assert sorted(rcpts) == sorted(deliveries), "each sent delivery exactly once"
    ids = set()
    for rcpt, msg in messages:
        d = deliveries[rcpt]
        assert msg.get_content_type() == "multipart/alternative"
        text_part, html_part = msg.iter_parts()
        assert text_part.get_content_type() == "text/plain"
        assert html_part.get_content_type() == "text/html"
        assert msg["To"].addresses[0].addr_spec == rcpt
        # The delivery, its mark, the issue, this installation's random part.
        assert re.fullmatch(
            rf"<d{d.id}\.[a-z2-7]{{10}}\.i{issue_id}\.[0-9a-f]{{12}}@example\.org>",
            msg["Message-ID"],
        )
        assert msg["Precedence"] == "bulk"
        assert msg["Feedback-ID"].startswith(f"i{issue_id}:")
        ids.add(msg["Message-ID"])
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        match = re.search(r"/u/([A-Za-z0-9_.-]+)>", msg["List-Unsubscribe"])
        assert match and read("unsubscribe", match.group(1)) == d.subscription_id
        assert f"/u/{match.group(1)}" in html_part.get_content()
        assert f"Hi {d.name}" in text_part.get_content()
        assert msg["Subject"] == "Nouvelles de février — édition 1"
    assert len(ids) == len(messages)


def read_maildir(path: Path) -> list[tuple[str, EmailMessage]]:
    box = mailbox.Maildir(path, factory=None, create=False)
    out = []
    for key in box.iterkeys():
        with box.get_file(key) as f:
            msg = parse(f.read())
        out.append((msg["To"].addresses[0].addr_spec, msg))
    return out


class BatchSizes:
    """A transport that notes the size of each batch it is given, the first and the ones
    `more` gives (`note` and `asking` are hooks for the tests that look closer)."""

    def __init__(self, inner: Transport) -> None:
        self.inner, self.sizes = inner, list[int]()

    def note(self, given: Sequence[Recipient]) -> None:
        if given:
            self.sizes.append(len(given))

    def asking(self) -> None:
        """Called when the run asks for its next batch, before it claims it."""

    def send(
        self,
        envelope_from: Sender,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        def noted() -> Sequence[Recipient]:
            assert more is not None
            self.asking()
            given = more()
            self.note(given)
            return given

        self.note(batch)
        return self.inner.send(envelope_from, batch, render, noted if more else None)

    def close(self) -> None:
        self.inner.close()


def test_inline_send_to_maildir_gives_everyone_one_copy(
    session: Session, db_url: str, tmp_path: Path
) -> None:
    issue_id = ready_issue(session, 120, names=["Zoë Ünïcode", "<b>Bob & Co</b>", "Ann"])
    sf = session_factory(db_url)
    outbox = tmp_path / "outbox"
    progress: list[BatchResult] = []
    transport = BatchSizes(MaildirTransport(outbox))
    totals = send_issue_inline(sf, issue_id, transport, get_settings(), progress.append, size=50)
    assert totals == BatchResult(claimed=120, sent=120, retried=0, failed=0)
    # One run (inside its time): the first claim, then the next two the transport asked for.
    assert transport.sizes == [50, 50, 20]
    assert [p.sent for p in progress] == [120]
    session.expire_all()
    issue = session.get(Issue, issue_id)
    assert issue is not None and issue.status == "sent" and issue.sent_at is not None
    messages = read_maildir(outbox)
    check_copies(session, issue_id, messages)
    for _, msg in messages:  # each copy's own VERP return path
        assert re.fullmatch(r"<bounces\+\d+-[a-z2-7]{10}@example\.org>", msg["Return-Path"])
    assert len({msg["Return-Path"] for _, msg in messages}) == len(messages)

    # A rerun sends nothing new.
    assert send_issue_inline(sf, issue_id, transport, get_settings()) == BatchResult()
    assert len(read_maildir(outbox)) == 120


@pytest.mark.parametrize("status", ["paused", "cancelled", "draft"])
def test_paused_cancelled_or_draft_issue_sends_nothing(
    session: Session, db_url: str, tmp_path: Path, status: str
) -> None:
    issue_id = ready_issue(session, 5, others=False)
    issue = session.get(Issue, issue_id)
    assert issue is not None
    issue.status = status
    session.commit()
    sf = session_factory(db_url)
    transport = MaildirTransport(tmp_path / "outbox")
    assert send_batch(sf, issue_id, "w", transport, get_settings()) == BatchResult()
    assert issue_progress(session, issue_id).pending == 5
    assert read_maildir(tmp_path / "outbox") == []
    if status == "paused":  # only `resume` goes on, clearing the count of transport errors
        with pytest.raises(DigestError, match="is paused"):
            start_sending(session, issue_id)


def test_unprepared_issue_is_a_clear_error(session: Session, db_url: str, tmp_path: Path) -> None:
    """Clear errors are DigestErrors: the CLI prints one line, the API answers 4xx."""
    issue_id = seed_issue(session, 1, others=False, status="approved")
    with pytest.raises(DeliveryError, match="not rendered"):
        prepare_issue_message(session, issue_id, get_settings())
    with pytest.raises(DeliveryError, match="approve it first"):
        start_sending(session, issue_id)
    session.execute(update(Issue).where(Issue.id == issue_id).values(status="sending"))
    session.commit()
    with pytest.raises(DeliveryError, match="prepare it"):
        send_batch(
            session_factory(db_url), issue_id, "w", MaildirTransport(tmp_path / "o"), get_settings()
        )
    with pytest.raises(NotFound, match="does not exist"):
        send_batch(
            session_factory(db_url),
            issue_id + 1,
            "w",
            MaildirTransport(tmp_path / "o"),
            get_settings(),
        )
    assert issubclass(DeliveryError, DigestError)


class Scripted:
    """A transport that answers the batch's messages with the given results, in order."""

    def __init__(self, *results: tuple[Outcome, bool]) -> None:
        self.results = results

    def send(
        self,
        envelope_from: str,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        for r, (outcome, transport_error) in zip(batch, self.results, strict=True):
            yield [SendResult(r.delivery_id, outcome, outcome, transport_error)]

    def close(self) -> None:
        pass


def test_a_success_resets_the_errors_in_a_row_left_by_an_earlier_batch(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only errors in a row count towards the self-pause: the next success resets the count,
    in a later batch too, and a deferred (untried) message in between changes nothing."""
    monkeypatch.setattr(send_module, "FLUSH_EVERY", 1)  # one ledger write per result
    issue_id = ready_issue(session, 4, others=False)
    sf = session_factory(db_url)

    def errors_in_a_row() -> int:
        session.expire_all()
        return session.scalars(select(Issue.consecutive_errors).where(Issue.id == issue_id)).one()

    send_batch(
        sf, issue_id, "w", Scripted(("retry", True), ("retry", True)), get_settings(), size=2
    )
    assert errors_in_a_row() == 2
    send_batch(
        sf, issue_id, "w", Scripted(("deferred", False), ("sent", False)), get_settings(), size=2
    )
    assert errors_in_a_row() == 0


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_batch_writes_its_250s_on_one_connection_it_holds(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a flush of results that are all 'sent' is one UPDATE on a connection
    the batch holds (no checkout, ping, BEGIN and COMMIT per flush): the claim's session
    and that connection are the batch's only checkouts, however many flushes. A flush with
    anything else in it still takes a transaction of its own. (PostgreSQL's path only: SQLite
    writes every flush in a transaction.)"""
    monkeypatch.setattr(send_module, "FLUSH_EVERY", 1)  # one ledger write per result
    issue_id = ready_issue(session, 7, others=False)
    sf = session_factory(db_url)
    engine = get_engine(db_url)
    checkouts: list[object] = []

    def checkout(*args: object) -> None:
        checkouts.append(args)

    sent: list[tuple[Outcome, bool]] = [("sent", False)] * 6
    event.listen(engine, "checkout", checkout)
    try:
        with statements(engine) as seen:
            result = send_batch(sf, issue_id, "w", Scripted(*sent), get_settings(), size=6)
        assert result == BatchResult(claimed=6, sent=6)
        assert len(checkouts) == 2, seen
        marks = [s for s in seen if s.startswith("UPDATE deliveries SET status") and "sent" in s]
        assert len(marks) == 6, seen
        checkouts.clear()
        # A retry: its flush takes a transaction (a checkout) of its own.
        result = send_batch(sf, issue_id, "w", Scripted(("retry", False)), get_settings(), size=1)
        assert result == BatchResult(claimed=1, retried=1)
        assert len(checkouts) == 2
    finally:
        event.remove(engine, "checkout", checkout)
    assert [d.status for d in deliveries(session, issue_id)] == ["sent"] * 6 + ["pending"]


def deliveries(session: Session, issue_id: int) -> list[Delivery]:
    session.expire_all()
    query = select(Delivery).where(Delivery.issue_id == issue_id).order_by(Delivery.id)
    return list(session.scalars(query))


class TakenOver:
    """A transport whose batch stalls after two messages, long enough for its lease to run
    out and another worker to claim the rest; it then reports the third message as sent and
    would go on with the rest if the batch let it."""

    def __init__(self, sf: sessionmaker[Session], issue_id: int) -> None:
        self.sf, self.issue_id = sf, issue_id
        self.rendered: list[int] = []
        self.stolen: list[int] = []

    def send(
        self,
        envelope_from: str,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        for n, r in enumerate(batch):
            if n == 2:
                with self.sf.begin() as s:  # another worker, after the lease ran out
                    later = utcnow() + timedelta(seconds=get_settings().lease_seconds + 1)
                    taken = claim(
                        s,
                        self.issue_id,
                        "thief",
                        100,
                        later,
                        lease_seconds=get_settings().lease_seconds,
                    ).recipients
                    self.stolen = [t.delivery_id for t in taken]
            render(r)
            self.rendered.append(r.delivery_id)
            yield [SendResult(r.delivery_id, "sent", "250 ok")]

    def close(self) -> None:
        pass


def test_a_batch_whose_rows_were_taken_over_writes_nothing_over_them_and_stops(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_module, "FLUSH_EVERY", 1)  # each result written at once
    issue_id = ready_issue(session, 10, others=False)
    sf = session_factory(db_url)
    transport = TakenOver(sf, issue_id)
    result = send_batch(sf, issue_id, "w", transport, get_settings())

    rows = deliveries(session, issue_id)
    assert len(transport.stolen) == 8
    # The thief's rows are untouched: still its to send, claimed once by it.
    assert [(d.status, d.attempts) for d in rows[2:]] == [("sending", 2)] * 8
    assert {d.lease_owner for d in rows[2:]} == {"thief"}
    assert [d.status for d in rows[:2]] == ["sent", "sent"]
    # One result refused, seven rows it never reported on lost too; it stopped at once.
    assert result == BatchResult(claimed=10, sent=2, refused=8)
    assert transport.rendered == [d.id for d in rows[:3]]


class Slow:
    """A transport that waits `seconds` (reporting empty chunks, like SMTP's waits) before
    the batch's results; `during` runs while it waits."""

    def __init__(self, seconds: float, during: Callable[[], None]) -> None:
        self.seconds, self.during = seconds, during

    def send(
        self,
        envelope_from: str,
        batch: Sequence[Recipient],
        render: Render,
        more: More | None = None,
    ) -> Iterator[list[SendResult]]:
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)
            yield []
        self.during()
        yield [SendResult(r.delivery_id, "sent", "250 ok") for r in batch]

    def close(self) -> None:
        pass


def test_a_slow_batch_renews_its_lease_so_nobody_takes_its_rows(
    session: Session, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch busy for longer than its lease (a slow relay, a loaded machine) keeps its
    rows: another worker claiming after the first lease would have run out gets nothing."""
    monkeypatch.setenv("DIGEST_LEASE_SECONDS", "5")
    reset_settings()
    issue_id = ready_issue(session, 6, others=False)
    sf = session_factory(db_url)
    stolen: list[Recipient] = []
    renewals: list[float] = []
    started = time.monotonic()

    def other_worker() -> None:
        with sf.begin() as s:
            stolen.extend(
                claim(
                    s, issue_id, "other", 100, lease_seconds=get_settings().lease_seconds
                ).recipients
            )

    result = send_batch(
        sf,
        issue_id,
        "w",
        Slow(6.0, other_worker),
        get_settings(),
        on_renew=lambda: renewals.append(1),
    )
    assert time.monotonic() - started > 5, "the batch did not outlast its first lease"
    assert stolen == []
    assert result == BatchResult(claimed=6, sent=6)
    assert len(renewals) >= 2
    assert {(d.status, d.attempts) for d in deliveries(session, issue_id)} == {("sent", 1)}
