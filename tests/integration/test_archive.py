"""The public archive of a list's sent issues, and its Atom feed, on SQLite and PostgreSQL.

The hostile corpus is collected, composed, approved and delivered for real; the archive then
shows that issue to anyone, with nobody's details, and never an issue that did not go out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import feedparser
import html5lib
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.delivery.maildir import MaildirTransport
from digest.delivery.send import send_issue_inline
from digest.models import Issue, IssueStatus, MailingList
from digest.pipeline import start_sending
from digest.placeholders import Slots
from digest.web.app import create_app
from digest.web.security import ISSUE_CSP, PAGE_CSP
from tests.fixtures.hostile.render.corpus import (
    PUBLIC_URL,
    SUBSCRIBERS,
    check_html,
    issue_from_corpus,
)
from tests.fixtures.sources.server import SourceServer, serving
from tests.helpers import run_digest

# A subject is the editor's words, but it may quote a feed: it must stay text everywhere.
HOSTILE_SUBJECT = 'Q&A </title><script>alert(1)</script> <b onmouseover="x()">"quoted"</b> ]]>'


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        yield running


@pytest.fixture(autouse=True)
def _public_url(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_PUBLIC_URL", PUBLIC_URL)
    reset_settings()


@pytest.fixture
def sent(session: Session, db_url: str, server: SourceServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The hostile corpus as issue 1 of list "hostile", delivered to every subscriber."""
    hostile = issue_from_corpus(session, server)
    issue = session.get(Issue, hostile.issue_id)
    assert issue is not None
    issue.subject = HOSTILE_SUBJECT
    start_sending(session, hostile.issue_id)
    session.commit()
    totals = send_issue_inline(
        session_factory(db_url),
        hostile.issue_id,
        MaildirTransport(tmp_path / "outbox"),
        get_settings(),
    )
    assert totals.sent == len(SUBSCRIBERS)
    session.expire_all()
    assert session.get(Issue, hostile.issue_id).status == IssueStatus.SENT  # type: ignore[union-attr]
    return hostile


def _issue(session: Session, list_id: int, number: int, status: IssueStatus) -> None:
    session.add(
        Issue(
            list_id=list_id,
            number=number,
            subject=f"Issue {number}",
            html="<p>x</p>",
            status=status,
            slot_marker=Slots.new().marker,
        )
    )


def test_a_sent_issue_is_in_the_archive_and_its_feed_for_anyone(session: Session, sent) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app())

    index = client.get("/archive/hostile")
    assert index.status_code == 200
    assert index.headers["content-security-policy"] == PAGE_CSP
    assert "no-store" not in index.headers.get("cache-control", "")  # public: cacheable
    assert "noindex" not in index.headers.get("x-robots-tag", "") + index.text
    tree = html5lib.parse(index.text, namespaceHTMLElements=False)
    assert tree.findall(".//script") == []
    links = {a.get("href"): "".join(a.itertext()) for a in tree.iter("a")}
    assert links["/archive/hostile/1"] == HOSTILE_SUBJECT  # escaped, shown as written
    assert "/archive/hostile/feed.atom" in links and "/s/hostile" in links

    page = client.get("/archive/hostile/1")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == ISSUE_CSP
    check_html(page.text, relative_ok=True)  # the frozen HTML's allow-list, again
    for person in sent.recipients:  # the archive copy is nobody's
        for secret in person.secrets():
            assert secret not in page.text

    feed = client.get("/archive/hostile/feed.atom")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Hostile News"
    [entry] = parsed.entries
    assert entry.title == HOSTILE_SUBJECT  # plain text, exactly: nothing became markup
    assert entry.link == f"{PUBLIC_URL}/archive/hostile/1"
    assert entry.id == f"{PUBLIC_URL}/archive/hostile/1"
    assert entry.published_parsed is not None


def test_only_issues_that_went_out_are_shown(session: Session, sent) -> None:  # type: ignore[no-untyped-def]
    for number, status in [
        (2, IssueStatus.DRAFT),
        (3, IssueStatus.APPROVED),
        (4, IssueStatus.PAUSED),
        (5, IssueStatus.CANCELLED),
        (6, IssueStatus.SENDING),
    ]:
        _issue(session, sent.list_id, number, status)
    session.commit()
    client = TestClient(create_app())
    for number in (2, 3, 4, 5, 0, -1, 7, 2**31, 2**63):
        assert client.get(f"/archive/hostile/{number}").status_code in {400, 404}, number
    assert client.get("/archive/hostile/6").status_code == 200
    entries = feedparser.parse(client.get("/archive/hostile/feed.atom").content).entries
    assert [e.link.rsplit("/", 1)[1] for e in entries] == ["6", "1"]


def test_a_private_list_has_no_archive_and_the_cli_turns_it_on_and_off(
    session: Session, sent, db_url: str
) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app())
    paths = ["/archive/hostile", "/archive/hostile/1", "/archive/hostile/feed.atom"]
    env = {"DIGEST_DATABASE_URL": db_url}
    done = run_digest("lists", "archive", "hostile", "--private", env=env)
    assert done.returncode == 0, done.stderr
    session.expire_all()
    assert session.get(MailingList, sent.list_id).private  # type: ignore[union-attr]
    # A private list and a list that does not exist answer alike.
    for path in [*paths, "/archive/nope", "/archive/nope/1", "/archive/nope/feed.atom"]:
        response = client.get(path)
        assert response.status_code == 404, path
    assert client.get("/archive/hostile").text == client.get("/archive/nope").text

    assert "/archive/hostile" not in client.get("/s/hostile").text  # no link to a private one

    done = run_digest("lists", "archive", "hostile", "--public", env=env)
    assert done.returncode == 0, done.stderr
    assert "public at /archive/hostile" in done.stdout
    for path in paths:
        assert client.get(path).status_code == 200, path
    assert 'href="/archive/hostile"' in client.get("/s/hostile").text  # the sign-up page links it

    missing = run_digest("lists", "archive", "nope", "--private", env=env)
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1


def test_the_archive_pages_through_older_issues(session: Session, db_url: str) -> None:
    lst = MailingList(slug="many", name="Many")
    session.add(lst)
    session.flush()
    for number in range(1, 31):
        _issue(session, lst.id, number, IssueStatus.SENT)
    session.commit()
    client = TestClient(create_app())
    tree = html5lib.parse(client.get("/archive/many").text, namespaceHTMLElements=False)
    hrefs = [a.get("href") for a in tree.iter("a")]
    shown = [h for h in hrefs if h.startswith("/archive/many/") and h[-1].isdigit()]
    assert shown == [f"/archive/many/{n}" for n in range(30, 6, -1)]
    assert "/archive/many?before=7" in hrefs
    rest = html5lib.parse(client.get("/archive/many?before=7").text, namespaceHTMLElements=False)
    older = [a.get("href") for a in rest.iter("a")]
    assert [h for h in older if h.startswith("/archive/many/") and h[-1].isdigit()] == [
        f"/archive/many/{n}" for n in range(6, 0, -1)
    ]
    assert not any("before=" in h for h in older)
    assert client.get("/archive/many?before=abc").status_code == 400
    assert len(feedparser.parse(client.get("/archive/many/feed.atom").content).entries) == 20
