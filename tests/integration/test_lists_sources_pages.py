"""The admin's list and source pages on both stores: a list created and edited with every
setting, each refused field shown beside itself (422, nothing changed); a source tried (the
preview of its items), added, edited, fetched now, disabled and enabled, with its history;
hostile input (bad slugs and zones, script in names, huge values, private addresses) is a
clear 4xx, never a 5xx; every change is in the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.models import AuditEntry, Item, MailingList, Role, Source, SourceFetch, Topic
from digest.sources.collect import collect_sources
from digest.subscribers.lists import create_list, link_source
from digest.web.app import create_app
from tests.accounts import grant_all, signed_in
from tests.fixtures.sources.server import Page, SourceServer, serving

FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour News</title>
<item><title>The ferry runs again</title><link>{base}/n/1</link>
<pubDate>Mon, 05 Feb 2024 09:00:00 GMT</pubDate><description>After the storm.</description></item>
<item><title>New pier opens</title><link>{base}/n/2</link>
<pubDate>Tue, 06 Feb 2024 09:00:00 GMT</pubDate></item>
</channel></rss>"""
LISTING = """<html><head><title>Town hall news</title></head><body><main>
{items}</main></body></html>"""


def listing(count: int) -> str:
    items = "".join(
        f'<article class="news"><h2><a href="/t/{n}">Council notice number {n}</a></h2>'
        f"<time>{n % 27 + 1} March 2024</time><p>What the council decided, part {n}.</p></article>"
        for n in range(count)
    )
    return LISTING.format(items=items)


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        running.add(
            "/feed.xml", Page(FEED.format(base=running.base).encode(), "application/rss+xml")
        )
        running.add("/town", listing(6))
        yield running


@pytest.fixture
def admin(db_url: str, session: Session) -> TestClient:
    grant_all(session)
    return signed_in(TestClient(create_app(), follow_redirects=False))


def csrf(client: TestClient, path: str = "/editor/lists") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


SETTINGS = {
    "slug": "harbour",
    "name": "Harbour Weekly",
    "description": "News from the harbour.",
    "from_name": "Harbour desk",
    "from_email": "desk@harbour.example.org",
    "reply_to": "letters@harbour.example.org",
    "postal_address": "1 Quay Street\r\nPort Town",
    "language": "fr",
    "timezone": "Europe/Paris",
    "schedule": "weekly mon 08:30",
    "send_local_time": "09:00",
    "opt_in": "single",
    "grouping": "source",
    "subject_template": "{list} n°{number}",
    "preheader_template": "{count} nouvelles",
    "lookback_days": "14",
    "max_items": "30",
    "auto_approve": "yes",
    "private": "yes",
    "editions": "en, es",
}


def audit_actions(session: Session) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_a_list_is_created_with_every_setting_and_edited(
    admin: TestClient, session: Session
) -> None:
    form = admin.get("/editor/lists/new")
    assert form.status_code == 200 and 'name="schedule"' in form.text
    response = admin.post("/editor/lists", data={"csrf": csrf(admin), **SETTINGS})
    assert response.status_code == 303, response.text[:800]
    assert response.headers["location"].endswith("/editor/lists/harbour?done=created")
    lst = session.scalar(select(MailingList).where(MailingList.slug == "harbour"))
    assert lst is not None
    assert (lst.name, lst.from_name, lst.from_email, lst.reply_to) == (
        "Harbour Weekly", "Harbour desk", "desk@harbour.example.org", "letters@harbour.example.org"
    )  # fmt: skip
    assert lst.postal_address == "1 Quay Street\nPort Town"
    assert (lst.language, lst.timezone, lst.schedule_cron, lst.send_local_time) == (
        "fr", "Europe/Paris", "30 8 * * 1", "09:00"
    )  # fmt: skip
    assert (lst.opt_in, lst.grouping, lst.lookback_days, lst.max_items) == (
        "single", "source", 14, 30
    )  # fmt: skip
    assert lst.auto_approve and lst.private and lst.editions == ["en", "es"]
    assert lst.subject_template == "{list} n°{number}"

    page = admin.get("/editor/lists/harbour")
    assert page.status_code == 200
    assert 'value="weekly mon 08:30"' in page.text and "single opt-in" in page.text

    # Edit: the form sends every field; an unticked box is off.
    edited = {**SETTINGS, "name": "Harbour Daily", "schedule": "daily 07:15", "opt_in": "double"}
    del edited["private"], edited["slug"]
    response = admin.post("/editor/lists/harbour", data={"csrf": csrf(admin), **edited})
    assert response.status_code == 303, response.text[:800]
    session.expire_all()
    lst = session.get_one(MailingList, lst.id)
    assert (lst.name, lst.schedule_cron, lst.opt_in, lst.private) == (
        "Harbour Daily", "15 7 * * *", "double", False
    )  # fmt: skip
    assert audit_actions(session)[-2:] == ["create_list", "edit_list"]
    entry = session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry is not None and entry.target_kind == "list" and entry.target_id == "harbour"
    assert set(entry.detail["changed"]) == {"name", "schedule_cron", "opt_in", "private"}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("slug", "Bad Slug!", "lower-case letters, digits and dashes"),
        ("slug", "new", "reserved"),
        ("slug", "x" * 101, "lower-case letters"),
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("timezone", "../../etc/passwd", "unknown time zone"),
        ("schedule", "monthly 31 09:00", "1 to 28"),
        ("schedule", "every full moon", "neither a schedule"),
        ("send_local_time", "25:00", "hour must be in"),
        ("from_email", "desk@", "invalid address"),
        ("reply_to", "a@b.example\r\nBcc: x@evil.example", "invalid address"),
        ("from_name", "Desk\r\nBcc: x@evil.example", "control"),
        ("language", "klingon-xx", "unknown language"),
        ("subject_template", "{list.__class__}", "may use only"),
        ("subject_template", "{list:>999999999}", "plainly"),
        ("lookback_days", "-3", "whole number"),
        ("max_items", "9999", "1 to 500"),
        ("opt_in", "triple", "opt-in mode"),
        ("name", "x" * 4000, "longer than 200"),
        ("postal_address", "Street\u202eevil", "bidi"),
    ],
)
def test_a_refused_field_is_shown_beside_it_and_nothing_is_made(
    admin: TestClient, session: Session, field: str, value: str, reason: str
) -> None:
    data = {"csrf": csrf(admin), **SETTINGS, field: value}
    response = admin.post("/editor/lists", data=data)
    assert response.status_code == 422, response.text[:500]
    shown = re.search(rf'id="e-{field}">([^<]*)<', response.text)
    assert shown, f"no error beside {field}"
    assert reason in shown.group(1).replace("&#39;", "'"), shown.group(1)
    assert session.scalar(select(func.count()).select_from(MailingList)) == 0
    assert "create_list" not in audit_actions(session)


def test_script_in_a_name_is_text_and_huge_values_are_refused(
    admin: TestClient, session: Session
) -> None:
    script = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    data = {"csrf": csrf(admin), **SETTINGS, "name": script}
    assert admin.post("/editor/lists", data=data).status_code == 303
    page = admin.get("/editor/lists/harbour").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "<img src=x" not in admin.get("/editor/lists").text
    # Past the form's bounds: a 400, never a 5xx; nothing changed.
    huge = {"csrf": csrf(admin), **SETTINGS, "name": "x" * 100_000}
    assert admin.post("/editor/lists/harbour", data=huge).status_code == 400
    session.expire_all()
    assert session.scalar(select(MailingList.name)) == script


def test_sources_topics_and_links_of_a_list(admin: TestClient, session: Session) -> None:
    lst = create_list(session, slug="town", name="Town")
    a = Source(name="Hall", url="https://hall.example.org/feed", kind="feed")
    b = Source(name="Port", url="https://port.example.org/feed", kind="feed")
    session.add_all([a, b])
    session.commit()
    token = csrf(admin)
    assert (
        admin.post(
            "/editor/lists/town/sources", data={"csrf": token, "source_id": a.id}
        ).status_code
        == 303
    )
    assert (
        admin.post("/editor/lists/town/sources", data={"csrf": token, "source_id": 999}).status_code
        == 400
    )
    data = {
        "csrf": token,
        "topic_slug": "council",
        "topic_name": "Council",
        "source_ids": [a.id],
        "keywords": "vote, budget",
    }
    assert admin.post("/editor/lists/town/topics", data=data).status_code == 303
    topic = session.scalar(select(Topic))
    assert topic is not None and topic.source_ids == [a.id]
    assert sorted(topic.keywords) == ["budget", "vote"]
    # A source not of the list cannot be in its topic.
    data = {**data, "source_ids": [b.id]}
    refused = admin.post("/editor/lists/town/topics", data=data)
    assert refused.status_code == 400 and "not sources of list" in refused.text
    page = admin.get("/editor/lists/town").text
    assert "Hall" in page and "Council" in page
    assert (
        admin.post(f"/editor/lists/town/sources/{a.id}/unlink", data={"csrf": token}).status_code
        == 303
    )
    session.expire_all()
    assert session.get_one(Topic, topic.id).source_ids == []
    assert (
        admin.post(f"/editor/lists/town/sources/{a.id}/unlink", data={"csrf": token}).status_code
        == 404
    )
    assert (
        admin.post("/editor/lists/town/topics/council/delete", data={"csrf": token}).status_code
        == 303
    )
    assert (
        admin.post("/editor/lists/town/topics/council/delete", data={"csrf": token}).status_code
        == 400
    )
    assert (
        admin.post(
            "/editor/lists/nowhere/sources", data={"csrf": token, "source_id": a.id}
        ).status_code
        == 404
    )
    assert lst.id


def test_a_viewer_reads_a_list_and_cannot_change_it(db_url: str, session: Session) -> None:
    create_list(session, slug="town", name="Town")
    grant_all(session)
    viewer = signed_in(TestClient(create_app(), follow_redirects=False), Role.VIEWER)
    page = viewer.get("/editor/lists/town")
    assert page.status_code == 200 and '<fieldset class="bare" disabled>' in page.text
    assert "Only admins change" in page.text
    data = {"csrf": csrf(viewer), **SETTINGS}
    assert viewer.post("/editor/lists/town", data=data).status_code == 403
    assert viewer.get("/editor/lists/new").status_code == 403
    assert viewer.get("/editor/sources/new").status_code == 403


def test_a_source_is_tried_added_fetched_and_disabled(
    admin: TestClient, session: Session, server: SourceServer
) -> None:
    create_list(session, slug="town", name="Town")
    session.commit()
    token = csrf(admin, "/editor/sources/new")
    form = {
        "csrf": token,
        "url": server.url("/town"),
        "kind": "auto",
        "list": "town",
        "interval": "60",
    }
    preview = admin.post("/editor/sources/try", data=form)
    assert preview.status_code == 200, preview.text[:800]
    assert "Preview: 6 items" in preview.text
    assert "Council notice number 0" in preview.text and "Council notice number 5" in preview.text
    assert session.scalar(select(func.count()).select_from(Source)) == 0  # nothing stored
    # The inferred selectors are in the form now: adding stores what was shown.
    item = re.search(r'name="item" value="([^"]*)"', preview.text)
    assert item and item.group(1)
    added = admin.post("/editor/sources", data={**form, "item": item.group(1).replace("&gt;", ">")})
    assert added.status_code == 303, added.text[:800]
    source = session.scalar(select(Source))
    assert source is not None and source.kind == "html" and source.selectors["item"]
    assert source.name == "Town hall news"
    assert [s.slug for s in session.scalars(select(MailingList))] == ["town"]
    assert session.scalar(select(MailingList)).sources == [source]  # type: ignore[union-attr]

    fetched = admin.post(f"/editor/sources/{source.id}/fetch", data={"csrf": token})
    assert fetched.status_code == 303
    page = admin.get(fetched.headers["location"]).text
    assert "Fetched: 6 items, 6 new." in page
    assert session.scalar(select(func.count()).select_from(Item)) == 6
    assert "Healthy" in page and "New items" in page  # health and history
    # A broken page: the failure is in the history, with its reason.
    server.add("/town", Page(b"gone", status=500))
    admin.post(f"/editor/sources/{source.id}/fetch", data={"csrf": token})
    page = admin.get(f"/editor/sources/{source.id}?done=fetched").text
    assert "Fetched, and it failed: HTTP 500" in page and "1 in a row" in page
    session.expire_all()
    outcomes = list(session.scalars(select(SourceFetch.outcome).order_by(SourceFetch.id)))
    assert outcomes == ["new_items", "error"]

    # Disabled: never due; enabled: due at once.
    assert (
        admin.post(f"/editor/sources/{source.id}/disable", data={"csrf": token}).status_code == 303
    )
    assert "Disabled" in admin.get(f"/editor/sources/{source.id}").text
    sf = session_factory(get_settings().database_url)
    assert collect_sources(sf, None, settings=get_settings()) == []
    assert (
        admin.post(f"/editor/sources/{source.id}/enable", data={"csrf": token}).status_code == 303
    )
    session.expire_all()
    assert session.get_one(Source, source.id).next_fetch_at is None
    actions = audit_actions(session)
    assert actions[-6:] == [
        "try_source", "add_source", "fetch_source", "fetch_source", "disable_source",
        "enable_source",
    ]  # fmt: skip


def test_a_sources_selectors_language_and_topics_are_edited(
    admin: TestClient, session: Session
) -> None:
    lst = create_list(session, slug="town", name="Town")
    source = Source(
        name="Hall", url="https://hall.example.org/news", kind="html", selectors={"item": "li"}
    )
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    session.add(
        Topic(
            list_id=lst.id,
            slug="council",
            name="Council",
            source_ids=[],
            categories=[],
            keywords=["vote"],
        )
    )
    session.commit()
    topic_id = session.scalar(select(Topic.id))
    box = f'id="topic-{topic_id}" name="topic_ids" value="{topic_id}"'
    assert box + ">" in admin.get(f"/editor/sources/{source.id}").text  # shown, not ticked
    token = csrf(admin)
    data = {
        "csrf": token,
        "name": "Town hall",
        "language": "fr",
        "interval": "120",
        "item": "article.news",
        "title": "h2",
        "topics_shown": "yes",
        "topic_ids": [topic_id],
    }
    response = admin.post(f"/editor/sources/{source.id}", data=data)
    assert response.status_code == 303, response.text[:600]
    session.expire_all()
    source = session.get_one(Source, source.id)
    assert (source.name, source.language, source.fetch_interval_minutes) == ("Town hall", "fr", 120)
    assert source.selectors == {"item": "article.news", "title": "h2"}
    assert session.get_one(Topic, topic_id).source_ids == [source.id]
    assert box + " checked>" in admin.get(f"/editor/sources/{source.id}").text
    bad = admin.post(f"/editor/sources/{source.id}", data={**data, "item": "li[[["})
    assert bad.status_code == 422 and "invalid CSS selector" in bad.text
    bad = admin.post(f"/editor/sources/{source.id}", data={**data, "language": "zz-nope"})
    assert bad.status_code == 422 and "unknown language" in bad.text
    bad = admin.post(f"/editor/sources/{source.id}", data={**data, "interval": "1"})
    assert bad.status_code == 422 and "5 to" in bad.text
    assert admin.get("/editor/sources/999999").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "gopher://example.org/",
        "javascript:alert(1)",
        "http://",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/feed",
        "http://[::1]/feed",
        "http://127.0.0.1:1/feed",
        "https://example.org/" + "a" * 3000,
    ],
)
def test_a_source_at_a_private_or_strange_address_is_refused(
    admin: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DIGEST_ALLOW_PRIVATE_FETCH", "0")
    reset_settings()
    app = create_app()
    client = signed_in(TestClient(app, follow_redirects=False))
    token = csrf(client, "/editor/sources/new")
    for path in ("/editor/sources/try", "/editor/sources"):
        response = client.post(
            path, data={"csrf": token, "url": url, "kind": "auto", "interval": "60"}
        )
        assert response.status_code in (400, 422), (path, response.status_code)
        assert "Not done." in response.text
    assert session.scalar(select(func.count()).select_from(Source)) == 0


def test_a_viewer_reads_a_source_and_script_in_its_name_is_text(
    db_url: str, session: Session
) -> None:
    script = '<script>alert("x")</script>'
    source = Source(name=script, url="https://s.example.org/feed", kind="feed")
    session.add(source)
    session.commit()
    grant_all(session)
    viewer = signed_in(TestClient(create_app(), follow_redirects=False), Role.VIEWER)
    page = viewer.get(f"/editor/sources/{source.id}")
    assert page.status_code == 200 and "<script>alert" not in page.text
    assert '<fieldset class="bare" disabled>' in page.text and "Fetch now" not in page.text
    token = csrf(viewer)
    for action in ("fetch", "disable", "enable"):
        assert (
            viewer.post(f"/editor/sources/{source.id}/{action}", data={"csrf": token}).status_code
            == 403
        )
    assert "<script>alert" not in viewer.get("/editor/sources").text
