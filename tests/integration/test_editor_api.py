"""The JSON API under /api/v1 on both stores: auth, CSRF, and every action an editor takes."""
# The users and tokens of these tests come from tests/accounts.py.

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.issues.compose import compose_issue
from digest.models import Delivery, Issue, IssueItem, Item, MailingList, Source, utcnow
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import add_subscriber
from digest.web.app import create_app
from tests.accounts import bearer, grant, signed_in

TITLES = [f"Cooperative news number {i}" for i in range(1, 6)]


@dataclass(frozen=True)
class Seeded:
    list_id: int
    issue_id: int
    item_ids: list[int]  # in the issue's order
    source_id: int


def seed_issue(session: Session, *, subscribers: int = 3) -> Seeded:
    """A list with a source of five recent items, some subscribers, and a composed draft."""
    lst = create_list(session, slug="coop-news", name="Co-op News", lookback_days=60)
    source = Source(name="Co-op Federation", url="https://coop.example.org/news", kind="manual")
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    now = utcnow()
    for i, title in enumerate(TITLES):
        session.add(
            Item(
                source_id=source.id,
                guid=f"g{i}",
                url=f"https://coop.example.org/news/{i}",
                canonical_url=f"https://coop.example.org/news/{i}",
                title=title,
                summary_html=f"<p>What happened in story {i}.</p>",
                summary_text=f"What happened in story {i}.",
                published_at=now - timedelta(days=i + 1),
            )
        )
    for i in range(subscribers):
        add_subscriber(session, lst.id, f"reader{i}@example.org", name=f"Reader {i}")
    add_subscriber(session, lst.id, "waiting@example.org", status="pending")
    session.flush()
    issue = compose_issue(session, lst.id)
    assert issue is not None
    items = [ii.item_id for ii in sorted(issue.issue_items, key=lambda ii: ii.position)]
    session.commit()
    return Seeded(lst.id, issue.id, items, source.id)


API = {**bearer(), "X-Requested-With": "test"}


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed_issue(session)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    grant(db_url)
    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


def order(session: Session, issue_id: int) -> list[int]:
    session.expire_all()
    return list(
        session.scalars(
            select(IssueItem.item_id)
            .where(IssueItem.issue_id == issue_id)
            .order_by(IssueItem.position)
        )
    )


def test_no_user_no_api(db_url: str) -> None:
    """A fresh install has no user, so no token opens the API."""
    client = TestClient(create_app())
    for path in ("/api/v1/issues", "/api/v1/openapi.json"):
        assert client.get(path, headers=bearer()).status_code == 401, path
    assert client.post("/api/v1/lists/x/compose", headers=API).status_code == 401


def test_auth_required(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/api/v1/issues")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["detail"]
    wrong = {"Authorization": "Bearer dgt_wrong"}
    assert client.get("/api/v1/issues", headers=wrong).status_code == 401
    basic = {"Authorization": "Basic YWRtaW46YWRtaW4="}  # HTTP Basic is gone
    assert client.get("/api/v1/issues", headers=basic).status_code == 401
    assert client.get("/api/v1/issues", headers={"Authorization": "Bearer !!"}).status_code == 401
    assert client.get("/api/v1/issues", headers=bearer()).status_code == 200


def test_changes_from_a_browser_session_need_the_csrf_header(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    first, second = seeded.item_ids[:2]
    signed_in(client)  # the session cookie, as a browser would send it to /api/v1
    assert client.get("/api/v1/issues").status_code == 200
    response = client.delete(f"/api/v1/issues/{seeded.issue_id}/items/{first}")
    assert response.status_code == 403
    assert "X-Requested-With" in response.json()["detail"]
    response = client.post(f"/api/v1/issues/{seeded.issue_id}/approve")
    assert response.status_code == 403
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "draft"
    assert order(session, seeded.issue_id)[:2] == [first, second]


def test_list_and_show_issues(client: TestClient, seeded: Seeded) -> None:
    [summary] = client.get("/api/v1/issues", headers=API).json()
    assert summary["id"] == seeded.issue_id
    assert summary["status"] == "draft"
    assert summary["items"] == 5
    assert summary["list_slug"] == "coop-news"
    assert summary["created_at"].endswith("Z")
    assert summary["progress"] == {
        "pending": 0,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "skipped": 0,
        "total": 0,
    }
    assert client.get("/api/v1/issues?status=sent", headers=API).json() == []
    assert len(client.get("/api/v1/issues?list=coop-news", headers=API).json()) == 1
    assert client.get("/api/v1/issues?list=nope", headers=API).status_code == 404
    bad = client.get("/api/v1/issues?status=bogus", headers=API)
    assert bad.status_code == 422
    assert "status" in bad.json()["detail"]

    detail = client.get(f"/api/v1/issues/{seeded.issue_id}", headers=API).json()
    assert [i["item_id"] for i in detail["issue_items"]] == seeded.item_ids
    assert [i["title"] for i in detail["issue_items"]] == TITLES
    assert detail["issue_items"][0]["source"] == "Co-op Federation"
    assert client.get("/api/v1/issues/999999", headers=API).status_code == 404


def test_move_drop_and_edit(client: TestClient, session: Session, seeded: Seeded) -> None:
    a, b, c, d, e = seeded.item_ids
    url = f"/api/v1/issues/{seeded.issue_id}"
    moved = client.post(f"{url}/items/{e}/move", json={"position": 0}, headers=API)
    assert moved.status_code == 200
    assert [i["item_id"] for i in moved.json()["issue_items"]] == [e, a, b, c, d]
    assert order(session, seeded.issue_id) == [e, a, b, c, d]

    dropped = client.delete(f"{url}/items/{b}", headers=API)
    assert dropped.status_code == 200
    assert order(session, seeded.issue_id) == [e, a, c, d]

    edited = client.patch(
        url, json={"subject": "  Co-op   News: spring ", "intro": "Hello all."}, headers=API
    )
    assert edited.status_code == 200
    assert edited.json()["subject"] == "Co-op News: spring"
    assert edited.json()["intro"] == "Hello all."

    # Bad input: a clear 4xx, nothing changed.
    for response, status in (
        (client.post(f"{url}/items/{a}/move", json={"position": 9}, headers=API), 400),
        (client.post(f"{url}/items/{a}/move", json={"position": -1}, headers=API), 422),
        (client.post(f"{url}/items/{a}/move", content=b"{", headers=API), 422),
        (client.post(f"{url}/items/{b}/move", json={"position": 0}, headers=API), 404),
        (client.patch(url, json={"subject": "   "}, headers=API), 400),
        (client.patch(url, json={"colour": "red"}, headers=API), 422),
    ):
        assert response.status_code == status, response.text
        assert response.json()["detail"]
    assert order(session, seeded.issue_id) == [e, a, c, d]
    assert session.get(Issue, seeded.issue_id).subject == "Co-op News: spring"


def test_preview_proof_approve_and_send(
    client: TestClient, session: Session, seeded: Seeded, tmp_path: Path
) -> None:
    url = f"/api/v1/issues/{seeded.issue_id}"
    preview = client.get(f"{url}/preview", headers=API).json()
    assert TITLES[0] in preview["html"] and TITLES[0] in preview["text"]
    assert "[[digest" not in preview["html"]
    assert preview["html_bytes"] > 1000

    proof = client.post(f"{url}/proof", json={"addresses": ["ed@example.org"]}, headers=API)
    assert proof.status_code == 200
    assert proof.json() == [
        {"email": "ed@example.org", "outcome": "sent", "detail": proof.json()[0]["detail"]}
    ]
    outbox = tmp_path / "outbox" / "new"
    assert len(list(outbox.iterdir())) == 1
    bad = client.post(f"{url}/proof", json={"addresses": ["not an address"]}, headers=API)
    assert bad.status_code == 400 and "invalid address" in bad.json()["detail"]

    # Sending a draft is refused; approving freezes it.
    assert client.post(f"{url}/send", headers=API).status_code == 400
    approved = client.post(f"{url}/approve", headers=API)
    assert approved.status_code == 200
    assert approved.json()["issue"]["status"] == "approved"
    assert approved.json()["html_bytes"] > 1000
    assert client.post(f"{url}/approve", headers=API).status_code == 400
    assert client.delete(f"{url}/items/{seeded.item_ids[0]}", headers=API).status_code == 400

    # No broker: the server sends after the response (TestClient runs it before returning).
    sent = client.post(f"{url}/send", headers=API)
    assert sent.status_code == 202
    assert sent.json()["planned"] == 3 and sent.json()["mode"] == "in-process"
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "sent"
    assert (
        session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "sent"))
        == 3
    )
    assert len(list(outbox.iterdir())) == 4
    progress = client.get(f"{url}/progress", headers=API).json()
    assert progress == {
        "pending": 0,
        "sending": 0,
        "sent": 3,
        "failed": 0,
        "skipped": 0,
        "total": 3,
    }
    assert client.post(f"{url}/send", headers=API).status_code == 400


def test_pause_resume_cancel(client: TestClient, session: Session, seeded: Seeded) -> None:
    url = f"/api/v1/issues/{seeded.issue_id}"
    assert client.post(f"{url}/pause", headers=API).status_code == 400  # a draft is not sending
    client.post(f"{url}/approve", headers=API)
    issue = session.get(Issue, seeded.issue_id)
    issue.status = "sending"  # as if a sender were at work
    session.commit()
    paused = client.post(f"{url}/pause", headers=API)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    cancelled = client.post(f"{url}/cancel", headers=API)
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"{url}/resume", headers=API).status_code == 400


def test_discard_and_compose(client: TestClient, session: Session, seeded: Seeded) -> None:
    # A draft is open: compose says so.
    busy = client.post("/api/v1/lists/coop-news/compose", headers=API)
    assert busy.status_code == 400 and "draft" in busy.json()["detail"]
    assert client.delete(f"/api/v1/issues/{seeded.issue_id}", headers=API).status_code == 204
    assert session.scalar(select(func.count()).select_from(Issue)) == 0
    composed = client.post("/api/v1/lists/coop-news/compose", headers=API)
    assert composed.status_code == 201
    body = composed.json()
    assert body["created"] is True and body["issue"]["items"] == 5
    client.post(f"/api/v1/issues/{body['issue']['id']}/approve", headers=API)
    nothing = client.post("/api/v1/lists/coop-news/compose", headers=API)
    assert nothing.status_code == 200
    assert nothing.json() == {
        "created": False,
        "issue": None,
        "message": "nothing new for coop-news",
    }
    assert client.post("/api/v1/lists/nope/compose", headers=API).status_code == 404


def test_lists_and_sources(client: TestClient, session: Session, seeded: Seeded) -> None:
    [lst] = client.get("/api/v1/lists", headers=API).json()
    assert lst["slug"] == "coop-news"
    assert lst["subscribers"]["confirmed"] == 3
    assert lst["subscribers"]["pending"] == 1
    assert lst["sources"] == 1
    assert lst["draft_issue_id"] == seeded.issue_id
    assert lst["last_issue"]["id"] == seeded.issue_id

    failing = Source(
        name="Broken feed",
        url="https://broken.example.org/feed",
        kind="feed",
        consecutive_failures=3,
        last_error="HTTP 503 from the server",
    )
    session.add(failing)
    session.commit()
    sources = {s["name"]: s for s in client.get("/api/v1/sources", headers=API).json()}
    assert sources["Co-op Federation"]["health"] == "manual"
    assert sources["Co-op Federation"]["items"] == 5
    assert sources["Co-op Federation"]["lists"] == ["coop-news"]
    assert sources["Broken feed"]["health"] == "failing"
    assert sources["Broken feed"]["last_error"] == "HTTP 503 from the server"


def test_delivery_events_by_issue_and_address(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    from digest.models import DeliveryEvent

    session.add_all(
        [
            DeliveryEvent(
                verdict="hard",
                action="suppressed",
                via="inbound",
                matched=True,
                issue_id=seeded.issue_id,
                email="ada@example.net",
                domain="example.net",
                status="5.1.1",
            ),
            DeliveryEvent(verdict="other", via="inbound", email="x@example.com"),
        ]
    )
    session.commit()
    by_issue = client.get(f"/api/v1/events?issue={seeded.issue_id}", headers=API)
    assert by_issue.status_code == 200
    assert [(e["email"], e["verdict"], e["action"]) for e in by_issue.json()] == [
        ("ada@example.net", "hard", "suppressed")
    ]
    unmatched = client.get("/api/v1/events?unmatched=true", headers=API).json()
    assert [e["email"] for e in unmatched] == ["x@example.com"]
    assert client.get("/api/v1/events?issue=0", headers=API).status_code == 422


def test_postal_address_from_the_api_and_the_approval_warning(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    slug = session.get_one(MailingList, seeded.list_id).slug
    url = f"/api/v1/issues/{seeded.issue_id}"
    # No address yet: approval says so (and still approves).
    approved = client.post(f"{url}/approve", headers=API).json()
    assert any("no postal address" in w for w in approved["warnings"])
    put = client.put(
        f"/api/v1/lists/{slug}/postal-address",
        json={"postal_address": "Example Ltd\r\n1 High Street\nTown"},
        headers=API,
    )
    assert put.status_code == 200
    assert put.json() == {"postal_address": "Example Ltd\n1 High Street\nTown"}
    (row,) = client.get("/api/v1/lists", headers=API).json()
    assert row["postal_address"] == "Example Ltd\n1 High Street\nTown"
    bidi = client.put(
        f"/api/v1/lists/{slug}/postal-address",
        json={"postal_address": "Evil \u202e street"},
        headers=API,
    )
    assert bidi.status_code == 400 and "bidi" in bidi.json()["detail"]
    missing = client.put(
        "/api/v1/lists/nope/postal-address", json={"postal_address": "x"}, headers=API
    )
    assert missing.status_code == 404 and "detail" in missing.json()
