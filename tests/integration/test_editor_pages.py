"""The editor's HTML pages on both stores: auth, CSRF, and each form an editor submits."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Delivery, Issue, Source
from digest.web.app import create_app
from tests.accounts import PASSWORD, grant, sign_in, signed_in
from tests.integration.test_editor_api import TITLES, Seeded, order, seed_issue


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed_issue(session)


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    grant(db_url)
    with TestClient(create_app(), follow_redirects=False) as c:
        yield signed_in(c)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def post(client: TestClient, path: str, data: dict[str, str] | None = None):
    """A form POST as the editor's page sends it: with the session's token (and cookie)."""
    page = client.get("/editor/issues")
    assert page.status_code == 200
    token = csrf_of(page.text)  # the value every page's forms repeat
    return client.post(path, data={"csrf": token, **(data or {})})


def test_sign_in_required(db_url: str, seeded: Seeded) -> None:
    grant(db_url)
    client = TestClient(create_app(), follow_redirects=False)
    path = f"/editor/issues/{seeded.issue_id}"
    for headers in ({}, {"Cookie": "digest_session=forged"}):
        response = client.get(path, headers=headers)
        assert response.status_code == 303
        assert response.headers["location"] == f"/editor/signin?next={path}"
        assert TITLES[0] not in response.text
    wrong = sign_in(client, password="guess")
    assert wrong.status_code == 401 and "Wrong address or password" in wrong.text
    assert client.get("/editor/issues").status_code == 303
    done = sign_in(client, password=PASSWORD)
    assert done.status_code == 303
    assert client.get("/editor/issues").status_code == 200


def test_issue_page_shows_items_preview_and_forms(client: TestClient, seeded: Seeded) -> None:
    page = client.get(f"/editor/issues/{seeded.issue_id}")
    assert page.status_code == 200
    html = page.text
    positions = [html.index(t) for t in TITLES]
    assert positions == sorted(positions)  # in the issue's order
    assert f'src="/editor/issues/{seeded.issue_id}/preview" width="600"' in html
    assert "Approve issue" in html and "Send a proof" in html
    csp = page.headers["content-security-policy"]
    # Scripts from our own files only (the progress poller): nothing inline, nothing foreign.
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1]
    assert "default-src 'none'" in csp and "frame-src 'self'" in csp
    assert "<script>" not in html
    assert page.headers["x-frame-options"] == "DENY"

    mobile = client.get(f"/editor/issues/{seeded.issue_id}?view=mobile").text
    assert 'width="375"' in mobile
    text = client.get(f"/editor/issues/{seeded.issue_id}?view=text").text
    assert '<pre class="text-part"' in text and "Alex Reader" in text
    assert client.get(f"/editor/issues/{seeded.issue_id}?view=print").status_code == 400

    preview = client.get(f"/editor/issues/{seeded.issue_id}/preview")
    assert preview.status_code == 200
    assert TITLES[0] in preview.text and "[[digest" not in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in preview.headers["content-security-policy"]
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"
    assert client.get("/editor/issues/424242").status_code == 404


def test_forms_refuse_a_missing_forged_or_foreign_token(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    first = seeded.item_ids[0]
    path = f"/editor/issues/{seeded.issue_id}/items/{first}/drop"
    assert client.post(path).status_code == 403
    assert client.post(path, data={"csrf": "forged"}).status_code == 403
    token = csrf_of(client.get(f"/editor/issues/{seeded.issue_id}").text)
    foreign = client.post(path, data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    assert order(session, seeded.issue_id) == seeded.item_ids


def test_drop_move_edit(client: TestClient, session: Session, seeded: Seeded) -> None:
    a, b, c, d, e = seeded.item_ids
    base = f"/editor/issues/{seeded.issue_id}"
    moved = post(client, f"{base}/items/{c}/move", {"position": "1"})
    assert moved.status_code == 303
    assert moved.headers["location"] == f"{base}?done=moved#item-{c}"
    assert order(session, seeded.issue_id) == [a, c, b, d, e]
    assert "Item moved." in client.get(moved.headers["location"]).text

    assert post(client, f"{base}/items/{a}/drop").status_code == 303
    assert order(session, seeded.issue_id) == [c, b, d, e]

    refused = post(client, f"{base}/items/{e}/move", {"position": "7"})
    assert refused.status_code == 409
    assert 'role="alert"' in refused.text and "position must be between" in refused.text
    assert post(client, f"{base}/items/{e}/move", {"position": "x"}).status_code == 400

    saved = post(
        client,
        f"{base}/edit",
        {"subject": "Spring news", "preheader": "Four stories", "intro": "Dear members,"},
    )
    assert saved.status_code == 303
    session.expire_all()
    issue = session.get(Issue, seeded.issue_id)
    assert (issue.subject, issue.preheader, issue.intro) == (
        "Spring news",
        "Four stories",
        "Dear members,",
    )
    empty = post(client, f"{base}/edit", {"subject": " "})
    assert empty.status_code == 409 and "subject cannot be empty" in empty.text


def test_proof_approve_send(client: TestClient, session: Session, seeded: Seeded, tmp_path) -> None:
    base = f"/editor/issues/{seeded.issue_id}"
    proof = post(client, f"{base}/proof", {"addresses": "ed@example.org, chief@example.org"})
    assert proof.status_code == 303 and "done=proof&n=2" in proof.headers["location"]
    assert "Proof sent to 2 addresses." in client.get(proof.headers["location"]).text
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 2
    bad = post(client, f"{base}/proof", {"addresses": "nobody"})
    assert bad.status_code == 400 and "invalid address" in bad.text

    assert post(client, f"{base}/approve").status_code == 303
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "approved"
    page = client.get(base).text
    assert "Send issue" in page and "Approve issue" not in page
    assert "Move up" not in page  # an approved issue's items are frozen

    unconfirmed = post(client, f"{base}/send")
    assert unconfirmed.status_code == 400
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    sent = post(client, f"{base}/send", {"confirm": "yes"})
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{base}?done=sending-in-process"
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "sent"
    assert session.scalar(select(func.count()).select_from(Delivery)) == 3
    page = client.get(sent.headers["location"]).text
    assert '<progress max="3" value="3"' in page
    assert len(list((tmp_path / "outbox" / "new").iterdir())) == 5


def test_back_to_draft_and_a_cancel_that_asks_first(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    base = f"/editor/issues/{seeded.issue_id}"
    post(client, f"{base}/approve")
    assert "Back to draft" in client.get(base).text
    drafted = post(client, f"{base}/to-draft")
    assert drafted.headers["location"] == f"{base}?done=drafted"
    session.expire_all()
    issue = session.get(Issue, seeded.issue_id)
    assert issue.status == "draft" and issue.html is None and issue.approved_at is None
    assert "Approve issue" in client.get(base).text
    post(client, f"{base}/approve")
    unconfirmed = post(client, f"{base}/cancel")
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "approved"
    assert post(client, f"{base}/cancel", {"confirm": "yes"}).status_code == 303
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "cancelled"


def test_pause_resume_cancel(client: TestClient, session: Session, seeded: Seeded) -> None:
    base = f"/editor/issues/{seeded.issue_id}"
    post(client, f"{base}/approve")
    issue = session.get(Issue, seeded.issue_id)
    issue.status = "sending"
    session.commit()
    assert post(client, f"{base}/pause").status_code == 303
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "paused"
    assert "Resume sending" in client.get(base).text
    resumed = post(client, f"{base}/resume")
    assert resumed.headers["location"] == f"{base}?done=sending-in-process"
    session.expire_all()
    assert session.get(Issue, seeded.issue_id).status == "sent"  # 3 sent in the background
    cancel = post(client, f"{base}/cancel", {"confirm": "yes"})
    assert cancel.status_code == 409 and "is sent" in cancel.text


def test_lists_compose_sources(client: TestClient, session: Session, seeded: Seeded) -> None:
    lists = client.get("/editor/lists").text
    assert "Co-op News" in lists and "Open draft" in lists
    discard = f"/editor/issues/{seeded.issue_id}/discard"
    unconfirmed = post(client, discard)  # a destructive action asks first
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
    assert session.get(Issue, seeded.issue_id) is not None
    assert post(client, discard, {"confirm": "yes"}).headers["location"] == (
        "/editor/issues?done=discarded"
    )
    assert "Compose issue" in client.get("/editor/lists").text
    composed = post(client, "/editor/lists/coop-news/compose")
    assert composed.status_code == 303 and "done=composed" in composed.headers["location"]
    new_id = session.scalar(select(Issue.id))
    assert composed.headers["location"].startswith(f"/editor/issues/{new_id}?")
    post(client, f"/editor/issues/{new_id}/approve")
    nothing = post(client, "/editor/lists/coop-news/compose")
    assert nothing.headers["location"] == "/editor/lists?done=nothing-new"
    assert "Nothing new since the last issue" in client.get(nothing.headers["location"]).text
    assert post(client, "/editor/lists/nope/compose").status_code == 404

    session.add(
        Source(
            name="Broken feed",
            url="https://broken.example.org/rss",
            kind="feed",
            consecutive_failures=2,
            last_error="timed out after 20 s",
        )
    )
    session.commit()
    sources = client.get("/editor/sources").text
    assert "Failing · 2 in a row" in sources and "timed out after 20 s" in sources
    assert "Co-op Federation" in sources

    issues = client.get("/editor/issues").text
    assert "Approved" in issues and "Co-op News" in issues
    assert "No issues sent yet" in client.get("/editor/issues?status=sent").text


def test_postal_address_from_the_editor(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    page = client.get("/editor/lists")
    assert "Postal address" in page.text and "missing" in page.text
    saved = post(client, "/editor/lists/coop-news/postal-address", {"address": "1 High St\r\nTown"})
    assert saved.status_code == 303
    page = client.get("/editor/lists")
    assert "1 High St\nTown</textarea>" in page.text
    bad = post(client, "/editor/lists/coop-news/postal-address", {"address": "x\x07y"})
    assert bad.status_code == 422 and "control or bidi" in bad.text
