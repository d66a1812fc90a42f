"""The admin's subscriber pages and the /api/v1 subscriber operations, on both stores: each
route calls the service function and answers hostile input with a clear 4xx; the audit log
names subscribers by id (an erased address is in it nowhere); the export streams."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import AuditEntry, Role, SignupRequest, Subscriber, Suppression
from digest.subscribers.lists import create_list
from digest.subscribers.suppression import is_suppressed
from digest.subscribers.topics import define_topic
from digest.web.app import create_app
from tests.accounts import bearer, grant, signed_in

API = {**bearer(), "X-Requested-With": "test"}


@pytest.fixture
def admin(db_url: str, session: Session) -> Iterator[TestClient]:
    news = create_list(session, slug="news", name="News")
    create_list(session, slug="jobs", name="Jobs")
    define_topic(session, news, "coops", "Co-ops", keywords=["coop"])
    grant(session)
    grant(session, Role.PUBLISHER)
    session.commit()
    with TestClient(create_app(), follow_redirects=False) as client:
        yield signed_in(client)


def csrf(client: TestClient, path: str = "/editor/subscribers") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found
    return found.group(1)


def list_ids(session: Session) -> dict[str, int]:
    from digest.models import MailingList

    return {slug: id_ for id_, slug in session.execute(select(MailingList.id, MailingList.slug))}


def audit(session: Session) -> list[AuditEntry]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_the_admin_adds_edits_unsubscribes_downloads_and_erases(
    admin: TestClient, session: Session
) -> None:
    ids = list_ids(session)
    token = csrf(admin)
    # Added by hand, consent not recorded: pending on both lists, asked by mail.
    added = admin.post(
        "/editor/subscribers/new",
        data={
            "csrf": token,
            "email": "Zoé@Bücher.example",
            "name": "Zoé",
            "lists": [str(ids["news"]), str(ids["jobs"])],
        },
    )
    assert added.status_code == 303, added.text[:500]
    subscriber_id = int(added.headers["location"].split("/")[-1].split("?")[0])
    page = admin.get(added.headers["location"]).text
    assert "Subscriber added." in page and page.count('badge-draft">pending<') == 2
    requests = select(func.count()).select_from(SignupRequest)
    assert session.scalar(requests) == 2

    # Edited: name, zone, topic, confirmed on news (the admin vouches), unsubscribed on jobs.
    edited = admin.post(
        f"/editor/subscribers/{subscriber_id}/edit",
        data={
            "csrf": token,
            "name": "Zoé B.",
            "language": "fr",
            "timezone": "Europe/Paris",
            "status": [f"{ids['news']}:confirmed", f"{ids['jobs']}:unsubscribed"],
            "topics-shown": str(ids["news"]),
            "topics": f"{ids['news']}:coops",
        },
    )
    assert edited.status_code == 303 and edited.headers["location"].endswith("done=saved")
    person = admin.get(f"/api/v1/subscribers/{subscriber_id}", headers=API).json()
    assert person["name"] == "Zoé B." and person["timezone"] == "Europe/Paris"
    by_list = {s["list_slug"]: s for s in person["subscriptions"]}
    assert by_list["news"]["status"] == "confirmed" and by_list["news"]["topics"] == ["coops"]
    assert by_list["jobs"]["status"] == "unsubscribed"

    # A refused edit says why on the page, changes nothing.
    refused = admin.post(
        f"/editor/subscribers/{subscriber_id}/edit",
        data={"csrf": token, "name": "X", "status": f"{ids['jobs']}:confirmed"},
    )
    assert refused.status_code == 400 and "only the person can come back" in refused.text
    bad_zone = admin.post(
        f"/editor/subscribers/{subscriber_id}/edit",
        data={"csrf": token, "name": "X", "timezone": "<script>"},
    )
    assert (
        bad_zone.status_code == 400 and "<script>" not in bad_zone.text.split("Not done.")[1][:300]
    )

    unsub = admin.post(f"/editor/subscribers/{subscriber_id}/unsubscribe", data={"csrf": token})
    assert unsub.headers["location"].endswith("done=unsubscribed")

    data = admin.get(f"/editor/subscribers/{subscriber_id}/data.json")
    assert data.headers["content-disposition"].startswith("attachment")
    assert data.json()["subscriber"]["email"] == "zoé@bücher.example"

    # Erase asks first.
    unasked = admin.post(f"/editor/subscribers/{subscriber_id}/erase", data={"csrf": token})
    assert unasked.status_code == 400 and "Tick the box" in unasked.text
    assert session.get(Subscriber, subscriber_id) is not None
    erased = admin.post(
        f"/editor/subscribers/{subscriber_id}/erase", data={"csrf": token, "confirm": "yes"}
    )
    assert erased.status_code == 303 and erased.headers["location"].endswith("done=erased")
    session.expire_all()
    assert session.get(Subscriber, subscriber_id) is None
    assert is_suppressed(session, "zoé@xn--bcher-kva.example")
    assert admin.get(f"/editor/subscribers/{subscriber_id}").status_code == 404

    entries = audit(session)
    actions = [e.action for e in entries]
    assert actions == [
        "add_subscriber",
        "edit_subscriber",
        "unsubscribe_subscriber",
        "erase_subscriber",
    ]
    assert {(e.target_kind, e.target_id) for e in entries} == {("subscriber", str(subscriber_id))}
    dumped = json.dumps([[e.target_id, e.detail] for e in entries], ensure_ascii=False)
    assert "@" not in dumped and "bücher" not in dumped and "xn--" not in dumped
    # Added again by hand: refused, the page says why.
    again = admin.post(
        "/editor/subscribers/new",
        data={"csrf": token, "email": "zoé@bücher.example", "lists": [str(ids["news"])]},
    )
    assert again.status_code == 400 and "erased" in again.text


@pytest.mark.parametrize(
    "email",
    ["nobody", "a@@b.example", "x@example.org\r\nBcc: y@example.org", "\u202ex@example.org"],
)
def test_hostile_addresses_are_refused_on_the_page_and_the_api(
    admin: TestClient, session: Session, email: str
) -> None:
    ids = list_ids(session)
    page = admin.post(
        "/editor/subscribers/new",
        data={"csrf": csrf(admin), "email": email, "lists": [str(ids["news"])], "consent": "yes"},
    )
    assert page.status_code == 400 and "invalid address" in page.text
    api = admin.post(
        "/api/v1/subscribers",
        headers=API,
        json={"email": email, "lists": ["news"], "consent_recorded": True},
    )
    assert api.status_code == 400 and "invalid address" in api.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_the_api_adds_edits_and_erases(admin: TestClient, session: Session) -> None:
    made = admin.post(
        "/api/v1/subscribers",
        headers=API,
        json={
            "email": "ana@example.org",
            "name": "A" * 1000,
            "lists": ["news"],
            "consent_recorded": True,
        },
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert len(body["name"]) == 200 and body["subscriptions"][0]["status"] == "confirmed"
    sid = body["id"]
    assert (
        admin.post(
            "/api/v1/subscribers",
            headers=API,
            json={"email": "b@example.org", "lists": ["nope"], "consent_recorded": True},
        ).status_code
        == 404
    )
    assert (
        admin.post(
            "/api/v1/subscribers",
            headers=API,
            json={"email": "b@example.org", "lists": [], "consent_recorded": True},
        ).status_code
        == 422
    )
    patched = admin.patch(
        f"/api/v1/subscribers/{sid}",
        headers=API,
        json={"language": "es", "lists": {"news": {"topics": ["coops"]}}},
    )
    assert patched.status_code == 200 and patched.json()["language"] == "es"
    assert (
        admin.patch(
            f"/api/v1/subscribers/{sid}",
            headers=API,
            json={"lists": {"jobs": {"status": "pending"}}},
        ).status_code
        == 404
    )  # not on that list
    stopped = admin.post(
        f"/api/v1/subscribers/{sid}/unsubscribe", headers=API, json={"list": "news"}
    )
    assert stopped.json()["stopped"] == ["news"]
    found = admin.get("/api/v1/subscribers", headers=API, params={"q": "ana@"}).json()
    assert [r["id"] for r in found["rows"]] == [sid]
    assert admin.get(f"/api/v1/subscribers/{sid}/data", headers=API).json()["format"]
    erased = admin.delete(f"/api/v1/subscribers/{sid}", headers=API)
    assert erased.status_code == 200 and erased.json()["subscriptions"] == 1
    assert admin.delete(f"/api/v1/subscribers/{sid}", headers=API).status_code == 404
    publisher = {**bearer(Role.PUBLISHER), "X-Requested-With": "test"}
    assert admin.get("/api/v1/subscribers", headers=publisher).status_code == 403


def test_the_export_streams_and_neutralises_formulas(admin: TestClient, session: Session) -> None:
    for i, name in enumerate(["=1+2", "@cmd", "plain", "-neg"]):
        response = admin.post(
            "/api/v1/subscribers",
            headers=API,
            json={
                "email": f"p{i}@example.org",
                "name": name,
                "lists": ["news"],
                "consent_recorded": True,
            },
        )
        assert response.status_code == 201
    ids = list_ids(session)
    with admin.stream("GET", "/editor/subscribers/export", params={"list": ids["news"]}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert 'filename="news.csv"' in r.headers["content-disposition"]
        text = "".join(r.iter_text())
    names = sorted(row["name"] for row in csv.DictReader(io.StringIO(text)))
    assert names == ["'-neg", "'=1+2", "'@cmd", "plain"]
    api = admin.get(
        "/api/v1/exports/subscribers", headers=API, params={"format": "json", "q": "p1@"}
    )
    assert api.status_code == 200 and [r["name"] for r in api.json()] == ["@cmd"]
    assert (
        admin.get("/api/v1/exports/subscribers", headers=API, params={"list": "nope"}).status_code
        == 404
    )
    assert admin.get("/editor/subscribers/export", params={"list": "9999"}).status_code == 404
    assert admin.get("/editor/subscribers/export", params={"format": "xml"}).status_code == 400


def test_the_suppression_list_page_and_api(admin: TestClient, session: Session) -> None:
    token = csrf(admin, "/editor/suppressions")
    added = admin.post(
        "/editor/suppressions", data={"csrf": token, "email": "Spam@Example.org", "detail": "asked"}
    )
    assert added.status_code == 303 and added.headers["location"].endswith("done=suppressed")
    bad = admin.post("/editor/suppressions", data={"csrf": token, "email": "=cmd()"})
    assert bad.status_code == 400 and "invalid address" in bad.text
    page = admin.get("/editor/suppressions", params={"q": "spam"}).text
    assert "spam@example.org" in page and "asked" in page
    entry = session.scalar(select(Suppression).where(Suppression.email == "spam@example.org"))
    assert entry is not None
    unasked = admin.post(f"/editor/suppressions/{entry.id}/lift", data={"csrf": token})
    assert unasked.status_code == 400 and "Tick the box" in unasked.text
    lifted = admin.post(
        f"/editor/suppressions/{entry.id}/lift", data={"csrf": token, "confirm": "yes"}
    )
    assert lifted.status_code == 303
    assert admin.get("/editor/suppressions", params={"reason": "nope"}).status_code == 400

    made = admin.post("/api/v1/suppressions", headers=API, json={"email": "x@example.org"})
    assert made.status_code == 201 and made.json()["reason"] == "manual"
    again = admin.post("/api/v1/suppressions", headers=API, json={"email": "X@example.org"})
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    listed = admin.get("/api/v1/suppressions", headers=API, params={"limit": 1}).json()
    assert [r["email"] for r in listed["rows"]] == ["x@example.org"]
    gone = admin.delete(f"/api/v1/suppressions/{made.json()['id']}", headers=API)
    assert gone.status_code == 204
    assert admin.delete(f"/api/v1/suppressions/{made.json()['id']}", headers=API).status_code == 404
    entries = audit(session)
    assert {e.target_kind for e in entries} == {"suppression"}
    assert "example.org" not in json.dumps([[e.target_id, e.detail] for e in entries])


def test_an_upload_with_hostile_rows_reports_each_by_line(
    admin: TestClient, session: Session
) -> None:
    """A cell over the CSV reader's size limit, a NUL, a formula, a bidi override: each bad
    row is reported with its line, the rest imported, never a 500."""
    ids = list_ids(session)
    body = (
        "email,name,city\n"
        "ok1@example.org,Fine,Lyon\n"
        "ok2@example.org," + "x" * 200_000 + ",\n"  # line 3: too big a cell
        "=HYPERLINK(1)@example.org,Formula,\n"  # line 4: a formula address (a valid one!)
        "ok3@example.org,nul\x00name,Nu\x00l\n"
        "\u202eevil@example.org,Bidi,\n"  # line 6
        "ok4@example.org,Zoë 🙂,\n"
    ).encode()
    response = admin.post(
        "/editor/subscribers/import",
        data={"csrf": csrf(admin), "list": str(ids["news"]), "consent": "yes"},
        files={"file": ("people.csv", body, "text/csv")},
    )
    assert response.status_code == 200, response.text[:300]
    rejected = re.findall(r'<td class="num">(\d+)</td><td>([^<]+)</td>', response.text)
    lines = [int(line) for line, _ in rejected]
    assert 3 in lines and 6 in lines and 2 not in lines and 7 not in lines, rejected
    assert "unreadable row" in dict(rejected)["3"]
    with admin.stream("GET", "/editor/subscribers/export", params={"list": ids["news"]}) as r:
        exported = "".join(r.iter_text())
    assert "ok4@example.org,Zoë 🙂" in exported and "\n=" not in exported
    # Control characters in a search are refused (PostgreSQL takes no NUL), never a 500.
    for path in ("/editor/subscribers", "/editor/suppressions", "/editor/subscribers/export"):
        assert admin.get(path, params={"q": "a\x00b"}).status_code == 400, path
    for path in ("/api/v1/subscribers", "/api/v1/suppressions", "/api/v1/exports/subscribers"):
        assert admin.get(path, params={"q": "a\x00b"}, headers=API).status_code == 422, path
    made = admin.post(
        "/api/v1/suppressions", headers=API, json={"email": "n@example.org", "detail": "a\x00b\nc"}
    )
    assert made.status_code == 201 and made.json()["detail"] == "a b c"


def test_the_api_imports_a_csv_body_with_the_consent_rule(
    admin: TestClient, session: Session
) -> None:
    body = "email,name\n" + "".join(f"r{i}@example.org,R {i}\n" for i in range(50)) + "bad,X\n"
    url = "/api/v1/lists/news/subscribers/import"
    headers = {**API, "Content-Type": "text/csv"}
    asked = admin.post(url, headers=headers, content=body.encode())
    assert asked.status_code == 200, asked.text
    report = asked.json()
    assert (report["added"], report["asked"], report["rejected"]) == (50, 50, 1)
    assert report["rejected_rows"][0]["line"] == 52
    consented = admin.post(
        "/api/v1/lists/jobs/subscribers/import",
        headers=headers,
        params={"consent_recorded": "true"},
        content=body.encode(),
    )
    assert consented.json()["asked"] == 0
    from digest.subscribers.service import count_by_status

    ids = list_ids(session)
    session.expire_all()
    assert count_by_status(session, ids["news"]) == {"pending": 50}
    assert count_by_status(session, ids["jobs"]) == {"confirmed": 50}
    latin1 = admin.post(url, headers=headers, content="email\nzoé@example.org\n".encode("latin-1"))
    assert latin1.status_code == 400 and "UTF-8" in latin1.json()["detail"]
    no_header = admin.post(url, headers=headers, content=b"a@example.org\n")
    assert no_header.status_code == 400 and "email" in no_header.json()["detail"]
    assert (
        admin.post(
            "/api/v1/lists/nope/subscribers/import", headers=headers, content=body.encode()
        ).status_code
        == 404
    )
    entries = [e for e in audit(session) if e.action == "import_subscribers"]
    assert [(e.target_kind, e.target_id) for e in entries] == [("list", "news"), ("list", "jobs")]


def test_an_api_import_past_the_spools_memory_is_read_whole(
    admin: TestClient, session: Session
) -> None:
    """A body larger than SPOOL_IN_MEMORY goes to disk (off the event loop) and every row of it
    is read. (The test client hands the app the body in one piece, chunked or not.)"""
    from digest.web.api_subscribers import SPOOL_IN_MEMORY

    name = "Reader " * 24  # long rows: a megabyte and a half in few rows
    rows = [f"reader{i:05d}@example.org,{name}{i:05d}\n".encode() for i in range(8_000)]
    size = sum(map(len, rows))
    assert size > SPOOL_IN_MEMORY * 1.5, size
    response = admin.post(
        "/api/v1/lists/jobs/subscribers/import",
        headers={**API, "Content-Type": "text/csv"},
        params={"consent_recorded": "true"},
        content=b"email,name\n" + b"".join(rows),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["added"], report["rejected"]) == (8_000, 0), report["rejected_rows"][:3]
