"""The JSON API's lists and sources, on both stores: the same services as the pages; a refused
setting is a 422 naming its field, a source that cannot be read a 400 with the reason; a
viewer reads, only an admin changes; every change is in the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import reset_settings
from digest.models import AuditEntry, Item, MailingList, Role, Source
from digest.web.app import create_app
from tests.accounts import bearer, grant_all, signed_in
from tests.fixtures.sources.server import Page, SourceServer, serving
from tests.integration.test_lists_sources_pages import FEED, listing

ADMIN = {**bearer(Role.ADMIN), "X-Requested-With": "test"}
VIEWER = {**bearer(Role.VIEWER), "X-Requested-With": "test"}


@pytest.fixture
def api(db_url: str, session: Session) -> TestClient:
    grant_all(session)
    return TestClient(create_app())


@pytest.fixture
def server() -> Iterator[SourceServer]:
    with serving() as running:
        running.add(
            "/feed.xml", Page(FEED.format(base=running.base).encode(), "application/rss+xml")
        )
        running.add("/town", listing(4))
        yield running


def test_a_list_is_created_read_and_patched(api: TestClient, session: Session) -> None:
    body = {
        "slug": "harbour",
        "name": "Harbour",
        "timezone": "America/Lima",
        "schedule": "monthly 3 07:00",
        "opt_in": "single",
        "reply_to": "Letters@Harbour.example.org",
        "editions": ["es"],
        "private": True,
    }
    made = api.post("/api/v1/lists", json=body, headers=ADMIN)
    assert made.status_code == 201, made.text
    out = made.json()
    assert out["schedule_cron"] == "0 7 3 * *" and out["schedule"] == "monthly 3 07:00"
    assert out["reply_to"] == "letters@harbour.example.org" and out["opt_in"] == "single"
    assert out["editions"] == ["es"] and out["private"] is True

    assert api.get("/api/v1/lists/harbour", headers=VIEWER).json()["timezone"] == "America/Lima"
    patched = api.patch(
        "/api/v1/lists/harbour",
        json={"grouping": "none", "send_local_time": "08:00"},
        headers=ADMIN,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["grouping"] == "none" and patched.json()["send_local_time"] == "08:00"
    assert patched.json()["timezone"] == "America/Lima"  # what was not given is kept

    refused = api.patch(
        "/api/v1/lists/harbour",
        json={"timezone": "Nowhere/Land", "subject_template": "{oops}"},
        headers=ADMIN,
    )
    assert refused.status_code == 422
    fields = {e["loc"][-1]: e["msg"] for e in refused.json()["errors"]}
    assert (
        "unknown time zone" in fields["timezone"] and "may use only" in fields["subject_template"]
    )
    session.expire_all()
    assert session.scalar(select(MailingList.grouping)) == "none"  # nothing changed

    duplicate = api.post("/api/v1/lists", json=body, headers=ADMIN)
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    bad_slug = api.post("/api/v1/lists", json={**body, "slug": "Ha Ha"}, headers=ADMIN)
    assert bad_slug.status_code == 422
    assert api.post("/api/v1/lists", json=body, headers=VIEWER).status_code == 403
    assert api.patch("/api/v1/lists/harbour", json={}, headers=VIEWER).status_code == 403
    assert api.patch("/api/v1/lists/nowhere", json={}, headers=ADMIN).status_code == 404
    actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["create_list", "edit_list"]  # as the pages and the CLI name them


def test_a_source_is_tried_added_linked_patched_and_fetched(
    api: TestClient, session: Session, server: SourceServer
) -> None:
    api.post("/api/v1/lists", json={"slug": "town", "name": "Town"}, headers=ADMIN)
    tried = api.post("/api/v1/sources/try", json={"url": server.url("/town")}, headers=ADMIN)
    assert tried.status_code == 200, tried.text
    out = tried.json()
    assert out["kind"] == "html" and out["selectors_inferred"] is True
    assert [i["title"] for i in out["items"]][:2] == [
        "Council notice number 0",
        "Council notice number 1",
    ]
    assert session.scalar(select(func.count()).select_from(Source)) == 0

    added = api.post(
        "/api/v1/sources",
        json={"url": server.url("/feed.xml"), "list": "town", "interval": 30},
        headers=ADMIN,
    )
    assert added.status_code == 201, added.text
    source = added.json()
    assert source["kind"] == "feed" and source["name"] == f"127.0.0.1:{server.port}"
    assert source["lists"] == ["town"] and source["fetch_interval_minutes"] == 30

    fetched = api.post(f"/api/v1/sources/{source['id']}/fetch", headers=ADMIN)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {
        "source_id": source["id"],
        "mode": "in-process",
        "ok": True,
        "seen": 2,
        "new": 2,
        "error": None,
    }
    assert session.scalar(select(func.count()).select_from(Item)) == 2
    detail = api.get(f"/api/v1/sources/{source['id']}", headers=VIEWER).json()
    assert detail["health"] == "ok" and detail["history"][0]["outcome"] == "new_items"

    patched = api.patch(
        f"/api/v1/sources/{source['id']}",
        json={"enabled": False, "language": "es", "name": "Puerto"},
        headers=ADMIN,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False and patched.json()["language"] == "es"
    again = api.patch(
        f"/api/v1/sources/{source['id']}",
        json={"enabled": False, "name": "Puerto", "topic_ids": []},
        headers=ADMIN,
    )
    assert again.status_code == 200, again.text
    # The log says what changed, not what was sent: the page's edit records the same way.
    edits = session.scalars(
        select(AuditEntry).where(AuditEntry.action.like("%source%")).order_by(AuditEntry.id)
    ).all()
    assert [e.detail for e in edits if e.detail and "changed" in e.detail][-2:] == [
        {"changed": ["name", "language", "enabled"]},
        {"changed": []},
    ]
    feed_selectors = api.patch(
        f"/api/v1/sources/{source['id']}", json={"selectors": {"item": "li"}}, headers=ADMIN
    )
    assert feed_selectors.status_code == 400 and "a feed has no selectors" in feed_selectors.text
    unlinked = api.delete(f"/api/v1/lists/town/sources/{source['id']}", headers=ADMIN)
    assert unlinked.status_code == 200 and unlinked.json()["source_ids"] == []
    assert (
        api.delete(f"/api/v1/lists/town/sources/{source['id']}", headers=ADMIN).status_code == 404
    )
    assert api.put(f"/api/v1/lists/town/sources/{source['id']}", headers=ADMIN).status_code == 200
    topic = api.put(
        "/api/v1/lists/town/topics/ferries",
        json={"name": "Ferries", "source_ids": [source["id"]]},
        headers=ADMIN,
    )
    assert topic.status_code == 200 and topic.json()["source_ids"] == [source["id"]]
    assert api.delete("/api/v1/lists/town/topics/ferries", headers=ADMIN).status_code == 204
    assert api.post(f"/api/v1/sources/{source['id']}/fetch", headers=VIEWER).status_code == 403
    assert api.post("/api/v1/sources/999/fetch", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "http://169.254.169.254/", "http://127.0.0.1:9/", "ftp://x.example/"],
)
def test_private_and_strange_addresses_are_refused(
    db_url: str, session: Session, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DIGEST_ALLOW_PRIVATE_FETCH", "0")
    reset_settings()
    grant_all(session)
    api = TestClient(create_app())
    for path in ("/api/v1/sources/try", "/api/v1/sources"):
        response = api.post(path, json={"url": url}, headers=ADMIN)
        assert response.status_code == 400, response.text
        assert "refused" in response.json()["detail"] or "only http(s)" in response.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Source)) == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"slug": "a", "name": "x" * 1001}, 422),  # past the body's bound
        ({"slug": "a", "name": "x" * 201}, 422),  # past the column's: named by the service
        ({"slug": "a" * 101, "name": "A"}, 422),
        ({"slug": "../etc", "name": "A"}, 422),
        ({"slug": "a", "name": "A", "timezone": "\x00"}, 422),
        ({"slug": "a", "name": "A", "schedule": "*/0 * * * *"}, 422),
        ({"slug": "a", "name": "A", "editions": ["xx"] * 21}, 422),
        ({"slug": "a", "name": "A", "lookback_days": 10**12}, 422),
        ({"slug": "a", "name": "A", "surprise": 1}, 422),
        ({"slug": "a", "name": "A", "from_name": "Desk\r\nBcc: x@evil.example"}, 422),
    ],
)
def test_hostile_list_bodies_are_4xx(
    api: TestClient, session: Session, body: dict[str, object], status: int
) -> None:
    response = api.post("/api/v1/lists", json=body, headers=ADMIN)
    assert response.status_code == status, response.text
    assert "detail" in response.json()
    assert session.scalar(select(func.count()).select_from(MailingList)) == 0


def test_script_in_a_name_is_kept_as_text(api: TestClient, session: Session) -> None:
    name = "<script>alert(1)</script>"
    made = api.post("/api/v1/lists", json={"slug": "x", "name": name}, headers=ADMIN)
    assert made.status_code == 201 and made.json()["name"] == name
    page_client = signed_in(TestClient(create_app()))
    assert "<script>alert(1)" not in page_client.get("/editor/lists/x").text
