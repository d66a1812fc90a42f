"""Helpers for the end-to-end address tests: a list with news, an issue composed, approved and
planned through the real services, and delivered copies read back from an SMTP server or a
Maildir (headers in RFC 6532 UTF-8 read as text, which the bytes parser cannot)."""

from __future__ import annotations

import mailbox
import socket
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.parser import Parser
from email.policy import SMTPUTF8
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.delivery.message import unstuff
from digest.issues.compose import compose_issue
from digest.models import Delivery, Item, MailingList, Source, utcnow
from digest.pipeline import approve_issue, start_sending
from digest.subscribers.lists import create_list, link_source

# The header fields of every copy of an issue, in order: a test that finds another has found
# an injected (or lost) header.
ISSUE_HEADERS = [
    "From",
    "Date",
    "Message-ID",
    "To",
    "List-Unsubscribe",
    "Subject",
    "List-Id",
    "List-Unsubscribe-Post",
    "Precedence",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
]


def news_list(session: Session, slug: str = "news", name: str = "News") -> MailingList:
    """A list with one source and two fresh items, so composing it gives an issue."""
    lst = create_list(session, slug=slug, name=name, lookback_days=30)
    source = Source(name="Site", url=f"http://127.0.0.1/{slug}", kind="html")
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    now = utcnow()
    for n in range(2):
        url = f"http://127.0.0.1/{slug}/{n}"
        session.add(
            Item(
                source_id=source.id,
                guid=f"{slug}-{n}",
                url=url,
                canonical_url=url,
                title=f"Story {n}",
                summary_text="Words.",
                summary_html="<p>Words.</p>",
                published_at=now - timedelta(hours=n + 1),
                first_seen_at=now,
            )
        )
    session.flush()
    return lst


def planned_issue(session: Session, list_id: int) -> int:
    """Compose, approve and plan the list's next issue (committed); its id."""
    issue = compose_issue(session, list_id)
    assert issue is not None, "nothing to compose"
    approve_issue(session, issue.id, get_settings())
    start_sending(session, issue.id)
    session.commit()
    return issue.id


def deliveries(session: Session, issue_id: int) -> dict[str, Delivery]:
    session.expire_all()
    rows = session.scalars(select(Delivery).where(Delivery.issue_id == issue_id))
    return {d.email: d for d in rows}


def parse_copy(data: bytes) -> EmailMessage:
    text = unstuff(data).decode("utf-8")  # our copies are ASCII but for RFC 6532 headers
    msg = Parser(policy=SMTPUTF8).parsestr(text)
    assert isinstance(msg, EmailMessage)
    return msg


def header_names(data: bytes) -> list[str]:
    """The header field names of a message, in order, from its raw bytes."""
    head = unstuff(data).split(b"\r\n\r\n", 1)[0].decode("utf-8")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and line[0] not in " \t"]


@dataclass
class Copy:
    envelope_to: str
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return parse_copy(self.data)


def maildir_copies(path: Path) -> list[Copy]:
    """Copies in a Maildir outbox; the envelope recipient is its To address."""
    box = mailbox.Maildir(path, factory=None, create=False)
    found = []
    for key in box.iterkeys():
        raw = box.get_bytes(key)
        head, _, body = raw.partition(b"\r\n")  # our Return-Path line
        assert head.startswith(b"Return-Path: ")
        msg = parse_copy(body)
        found.append(Copy(msg["To"].addresses[0].addr_spec, body))
    return found


def listening(port: int) -> bool:
    """Does something accept connections on 127.0.0.1:port yet?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
