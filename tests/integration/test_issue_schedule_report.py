"""Issue 9, sections 4 and 5 on both stores: a send scheduled in the list's time zone (DST gaps
and folds refused), an item edited or added by hand (hostile input kept as text), the delivery
report with its keyset pages, "send to those who have not got it" and the live progress JSON;
through the API, the editor's forms and the services they share."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from digest.config import get_settings
from digest.delivery.report import issue_report, report_page
from digest.errors import DigestError
from digest.issues import lifecycle
from digest.issues.schedule import due_sends, local_to_utc, parse_local_time
from digest.models import (
    Delivery,
    DeliveryEvent,
    FeedbackVia,
    Issue,
    IssueItem,
    Item,
    MailingList,
    Source,
    SuppressionReason,
    Verdict,
    utcnow,
)
from digest.pipeline import approve_issue
from digest.scheduled import start_due_sends
from digest.subscribers.actions import unsubscribe
from digest.subscribers.service import add_subscriber
from digest.subscribers.suppression import suppress, unsuppress
from digest.web.app import create_app
from tests.accounts import grant, signed_in
from tests.integration.test_editor_api import API, TITLES, Seeded, seed_issue

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


@pytest.fixture
def seeded(session: Session) -> Seeded:
    seeded = seed_issue(session)
    lst = session.get_one(MailingList, seeded.list_id)
    lst.timezone = "Europe/Paris"
    session.commit()
    return seeded


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    grant(db_url)
    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


def spring_gap(year: int) -> str:
    """02:30 on the last Sunday of March: Europe's clocks jump from 02:00 to 03:00."""
    day = date(year, 3, 31)
    while day.weekday() != 6:
        day -= timedelta(days=1)
    return f"{day}T02:30"


def approve(session: Session, issue_id: int) -> None:
    approve_issue(session, issue_id, get_settings())
    session.commit()


# --- the clock of the list's time zone ---------------------------------------------------


def test_wall_clock_times_of_the_lists_zone() -> None:
    # Winter (UTC+1) and summer (UTC+2) in Paris.
    assert local_to_utc(datetime(2026, 1, 15, 9, 0), "Europe/Paris") == datetime(2026, 1, 15, 8)
    assert local_to_utc(datetime(2026, 7, 15, 9, 0), "Europe/Paris") == datetime(2026, 7, 15, 7)
    # 29 March 2026, 02:00 -> 03:00: 02:30 never happens.
    with pytest.raises(
        DigestError, match=r"does not exist in Europe/Paris.*CET to CEST.*such as 03:30"
    ):
        local_to_utc(datetime(2026, 3, 29, 2, 30), "Europe/Paris")
    # 25 October 2026, 03:00 -> 02:00: 02:30 happens twice.
    with pytest.raises(DigestError, match=r"happens twice in Europe/Paris.*CEST and CET"):
        local_to_utc(datetime(2026, 10, 25, 2, 30), "Europe/Paris")
    assert parse_local_time("2026-03-29T09:30") == datetime(2026, 3, 29, 9, 30)
    assert parse_local_time("2026-03-29 09:30:15") == datetime(2026, 3, 29, 9, 30, 15)
    for bad in ("", "tomorrow", "2026-13-40T99:99", "2026-03-29T09:30+02:00", "9" * 40):
        with pytest.raises(DigestError):
            parse_local_time(bad)


def test_schedule_unschedule_and_the_due_check(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    url = f"/api/v1/issues/{seeded.issue_id}/schedule"
    # Only an approved issue is scheduled.
    draft = client.put(url, json={"send_at": "2030-01-15T09:00"}, headers=API)
    assert draft.status_code == 400 and "only an approved issue" in draft.json()["detail"]
    approve(session, seeded.issue_id)

    for value, words in (
        ("2020-01-15T09:00", "has passed"),
        ("2099-01-15T09:00", "up to a year ahead"),
        (spring_gap(utcnow().year + 1), "does not exist"),
        ("not a time", "YYYY-MM-DD HH:MM"),
        ("2026-02-30T09:00", "not a date and time"),
    ):
        refused = client.put(url, json={"send_at": value}, headers=API)
        assert refused.status_code == 400, value
        assert words in refused.json()["detail"], refused.json()
    assert client.put(url, json={"send_at": 5}, headers=API).status_code == 422

    local = (utcnow() + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    done = client.put(url, json={"send_at": f"{local:%Y-%m-%dT%H:%M}"}, headers=API)
    assert done.status_code == 200, done.text
    body = done.json()
    session.expire_all()
    send_at = session.get_one(Issue, seeded.issue_id).send_at
    assert send_at == local_to_utc(local, "Europe/Paris")
    assert body["send_at"].startswith(f"{send_at:%Y-%m-%dT%H:%M}")
    assert body["timezone"] == "Europe/Paris"
    listed = client.get("/api/v1/issues", headers=API).json()
    assert listed[0]["send_at"] == body["send_at"]
    from digest.models import AuditEntry

    entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None and entry.action == "put_schedule"
    assert entry.detail == {"send_at": f"{send_at:%Y-%m-%dT%H:%M:%SZ}"}

    # Not due before its time; due after, and handed over by the one send path.
    assert send_at is not None
    assert due_sends(session, send_at - timedelta(seconds=1)) == []
    session.rollback()
    handed = start_due_sends(session, send_at)
    session.commit()
    assert [h.issue_id for h in handed] == [seeded.issue_id]
    assert handed[0].planned == 3
    session.expire_all()
    assert session.get_one(Issue, seeded.issue_id).status == "sending"
    assert start_due_sends(session, send_at + timedelta(hours=1)) == []  # once only
    session.rollback()
    gone = client.delete(url, headers=API)
    assert gone.status_code == 400 and "no scheduled send" in gone.json()["detail"]


def test_unschedule_and_back_to_draft_drop_the_schedule(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    approve(session, seeded.issue_id)
    url = f"/api/v1/issues/{seeded.issue_id}/schedule"
    assert client.put(url, json={"send_at": "2099-01-01T09:00"}, headers=API).status_code == 400
    later = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT10:00")
    assert client.put(url, json={"send_at": later}, headers=API).status_code == 200
    assert client.delete(url, headers=API).json()["send_at"] is None
    assert client.put(url, json={"send_at": later}, headers=API).status_code == 200
    lifecycle.return_to_draft(session, seeded.issue_id)
    session.commit()
    session.expire_all()
    assert session.get_one(Issue, seeded.issue_id).send_at is None


def test_the_editor_schedules_in_the_lists_zone(
    db_url: str, session: Session, seeded: Seeded
) -> None:
    from digest.models import Role

    approve(session, seeded.issue_id)
    grant(db_url, Role.PUBLISHER)
    with TestClient(create_app(), follow_redirects=False) as browser:
        signed_in(browser, Role.PUBLISHER)
        page = browser.get(f"/editor/issues/{seeded.issue_id}")
        assert "Send at (Europe/Paris)" in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        action = f"/editor/issues/{seeded.issue_id}/schedule"
        gap = spring_gap(utcnow().year + 1)
        refused = browser.post(action, data={"csrf": token[1], "send_at": gap})
        assert refused.status_code == 400
        assert "does not exist in Europe/Paris" in refused.text
        hostile = browser.post(action, data={"csrf": token[1], "send_at": HOSTILE})
        assert hostile.status_code == 400 and "<script>alert" not in hostile.text
        local = (utcnow() + timedelta(days=5)).strftime("%Y-%m-%dT08:15")
        ok = browser.post(action, data={"csrf": token[1], "send_at": local})
        assert ok.status_code == 303
        page = browser.get(f"/editor/issues/{seeded.issue_id}?done=scheduled")
        assert f"Scheduled for {local.replace('T', ' ')} CE" in page.text
        issues = browser.get("/editor/issues")
        assert f"{local.replace('T', ' ')} CE" in issues.text


# --- an editor's hand on the items -------------------------------------------------------


def test_edit_an_item_keeps_hostile_text_as_text(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    first = seeded.item_ids[0]
    url = f"/api/v1/issues/{seeded.issue_id}/items/{first}"
    edited = client.patch(
        url,
        json={"title": f"  Our  {HOSTILE} \n take ", "summary": f"Para one.\n\n{HOSTILE}"},
        headers=API,
    )
    assert edited.status_code == 200, edited.text
    item = edited.json()["issue_items"][0]
    assert item["title"].startswith("Our <script>alert(1)</script>") and item["edited"]
    # The item itself keeps the source's words; the issue shows the editor's, escaped.
    session.expire_all()
    assert session.get_one(Item, first).title == TITLES[0]
    preview = client.get(f"/api/v1/issues/{seeded.issue_id}/preview", headers=API).json()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in preview["html"]
    assert "<script" not in preview["html"] and "<img src=x" not in preview["html"]
    assert "Our <script>alert(1)</script>" in preview["text"]

    for body, status in (
        ({"title": "   ", "summary": ""}, 400),
        ({"title": "x" * 301, "summary": ""}, 400),
        ({"title": "ok", "summary": "y" * 5001}, 400),
        ({"title": "ok", "summary": "", "extra": 1}, 422),
        ({"title": "x" * 2001}, 422),
    ):
        assert client.patch(url, json=body, headers=API).status_code == status, body
    other = f"/api/v1/issues/{seeded.issue_id}/items/999999"
    assert client.patch(other, json={"title": "t"}, headers=API).status_code == 404
    approve(session, seeded.issue_id)
    late = client.patch(url, json={"title": "Too late"}, headers=API)
    assert late.status_code == 400 and "only a draft" in late.json()["detail"]


def test_add_an_item_by_hand(client: TestClient, session: Session, seeded: Seeded) -> None:
    url = f"/api/v1/issues/{seeded.issue_id}/items"
    for link in (
        "javascript:alert(1)",
        "ftp://example.org/x",
        "file:///etc/passwd",
        "//example.org/x",
        "https://",
        "data:text/html,hi",
    ):
        body = {"title": "A", "url": link}
        refused = client.post(url, json=body, headers=API)
        assert refused.status_code == 400 and "http or https" in refused.json()["detail"], link
    assert client.post(url, json={"title": "A"}, headers=API).status_code == 422
    nul = {"title": "N\x00ul", "url": "https://n.example/\x00", "summary": "a\x00", "group": "\x00"}
    cleaned = client.post(url, json=nul, headers=API)
    assert cleaned.status_code == 201  # the NULs gone, not a 500
    dropped = cleaned.json()["issue_items"][-1]["item_id"]
    assert client.delete(f"{url}/{dropped}", headers=API).status_code == 200

    added = client.post(
        url,
        json={
            "title": f"Hand-picked {HOSTILE}",
            "url": "https://Other.Example.org/a path?utm_source=x&b=1",
            "summary": f"Why it matters.\n\n{HOSTILE}",
            "group": "  Picked \n by hand ",
        },
        headers=API,
    )
    assert added.status_code == 201, added.text
    items = added.json()["issue_items"]
    assert len(items) == 6
    last = items[-1]
    assert last["group"] == "Picked by hand" and last["position"] == 5
    assert last["url"] == "https://other.example.org/a%20path?utm_source=x&b=1"
    assert last["title"].startswith("Hand-picked <script>")
    session.expire_all()
    item = session.get_one(Item, last["item_id"])
    source = session.get_one(Source, item.source_id)
    assert source.url == "manual:coop-news" and source.kind == "manual"
    assert item.canonical_url == "https://other.example.org/a%20path?b=1"
    assert "<script" not in item.summary_html and "&lt;script&gt;" in item.summary_html
    preview = client.get(f"/api/v1/issues/{seeded.issue_id}/preview", headers=API).json()
    assert "Hand-picked &lt;script&gt;" in preview["html"] and "<script" not in preview["html"]

    # The same page again, or one of the issue's own, is refused; an empty group joins the last.
    again = client.post(url, json={"title": "B", "url": item.url or ""}, headers=API)
    assert again.status_code == 400 and "already in issue #1" in again.json()["detail"]
    own = client.post(
        url, json={"title": "C", "url": "https://coop.example.org/news/0"}, headers=API
    )
    assert own.status_code == 400
    second = client.post(
        url, json={"title": "Second", "url": "https://b.example.org/"}, headers=API
    )
    assert second.status_code == 201
    assert second.json()["issue_items"][-1]["group"] == "Picked by hand"
    # Into an existing group: at its end, before the hand-picked ones.
    first_group = items[0]["group"]
    third = client.post(
        url,
        json={"title": "Third", "url": "https://c.example.org/", "group": first_group},
        headers=API,
    )
    at = max(i["position"] for i in items if i["group"] == first_group) + 1
    assert third.json()["issue_items"][at]["title"] == "Third"
    assert (
        session.scalar(
            select(func.count()).select_from(IssueItem).where(IssueItem.issue_id == seeded.issue_id)
        )
        == 8
    )


# --- the report, and sending to the rest --------------------------------------------------


def test_report_send_to_the_rest_and_progress(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    approve(session, seeded.issue_id)
    base = f"/api/v1/issues/{seeded.issue_id}"
    assert client.post(f"{base}/send", headers=API).status_code == 202
    session.expire_all()
    issue = session.get_one(Issue, seeded.issue_id)
    assert issue.status == "sent" and issue.sent_at is not None
    first_sent = issue.sent_at

    # reader0's delivery failed for good; reader1 bounced afterwards; reader2 unsubscribed.
    deliveries = {d.email: d for d in session.scalars(select(Delivery))}
    failed = deliveries["reader0@example.org"]
    session.execute(
        update(Delivery)
        .where(Delivery.id == failed.id)
        .values(status="failed", last_error="550 5.1.1 no such user", sent_at=None)
    )
    session.add(
        DeliveryEvent(
            verdict=Verdict.HARD,
            via=FeedbackVia.INBOUND,
            matched=True,
            delivery_id=deliveries["reader1@example.org"].id,
            issue_id=seeded.issue_id,
            subscriber_id=deliveries["reader1@example.org"].subscriber_id,
            email="reader1@example.org",
            status="5.1.1",
            detail=HOSTILE,
        )
    )
    session.flush()
    unsubscribe(session, deliveries["reader2@example.org"].subscription_id, via="link")
    # Two join after it went out.
    for name in ("late-a", "late-b"):
        sub = add_subscriber(session, seeded.list_id, f"{name}@example.org", status="confirmed")
        sub.confirmed_at = first_sent + timedelta(minutes=5)
    # One more signed up after it and has not confirmed: joined, by when they signed up.
    waiting = add_subscriber(session, seeded.list_id, "late-c@example.org", status="pending")
    waiting.created_at = first_sent + timedelta(minutes=6)
    session.commit()

    report = client.get(f"{base}/report", headers=API).json()
    assert report["counts"] == {
        "sent": 2,
        "failed": 1,
        "skipped": 0,
        "bounced": 1,
        "complained": 0,
        "unsubscribed": 1,
        "joined": 3,
        "missing": 2,
    }
    failed_page = client.get(f"{base}/report/failed", headers=API).json()
    assert failed_page["rows"][0]["email"] == "reader0@example.org"
    assert failed_page["rows"][0]["detail"] == "550 5.1.1 no such user"
    bounced = client.get(f"{base}/report/bounced", headers=API).json()["rows"]
    assert bounced[0]["detail"].startswith("hard 5.1.1: <script>")

    # Keyset pages, and the address filter (its wildcards are text).
    one = client.get(f"{base}/report/joined?limit=1", headers=API).json()
    assert [r["email"] for r in one["rows"]] == ["late-a@example.org"]
    two = client.get(f"{base}/report/joined?limit=1&after={one['next_after']}", headers=API)
    assert [r["email"] for r in two.json()["rows"]] == ["late-b@example.org"]
    after = two.json()["next_after"]
    three = client.get(f"{base}/report/joined?limit=1&after={after}", headers=API).json()
    assert [r["email"] for r in three["rows"]] == ["late-c@example.org"]
    assert three["next_after"] is None
    search = client.get(f"{base}/report/joined?q=LATE-B", headers=API).json()["rows"]
    assert [r["email"] for r in search] == ["late-b@example.org"]

    # Each kind's search (the ledger's kinds find candidates through the subscribers' index,
    # those from subscriptions match the address itself): any case, any part, only matches.
    def found(kind: str, q: str) -> list[str]:
        rows = client.get(f"{base}/report/{kind}", params={"q": q}, headers=API).json()["rows"]
        return [r["email"] for r in rows]

    assert found("sent", "ADER2@EXAMPLE") == ["reader2@example.org"]
    assert found("sent", "reader0") == [] and found("failed", "ER0@") == ["reader0@example.org"]
    assert found("sent", "example.org") == ["reader1@example.org", "reader2@example.org"]
    assert found("missing", "Late-A") == ["late-a@example.org"] and found("missing", "-c") == []
    assert found("unsubscribed", "reader2") == ["reader2@example.org"]
    assert found("bounced", "ER1") == ["reader1@example.org"] and found("bounced", "er2") == []
    assert report["first_sent_at"] is not None
    first_sent_at = datetime.fromisoformat(report["first_sent_at"]).replace(tzinfo=None)
    assert first_sent_at == min(
        d.sent_at for d in deliveries.values() if d.sent_at is not None and d is not failed
    )
    assert client.get(f"{base}/report/sent?q=%25", headers=API).json()["rows"] == []
    assert client.get(f"{base}/report/sent?q=_", headers=API).json()["rows"] == []
    nul = client.get(f"{base}/report/joined", params={"q": "late-\x00a"}, headers=API)
    assert nul.status_code == 200 and len(nul.json()["rows"]) == 1  # PostgreSQL refuses NUL
    for bad in ("report/nobody", "report/sent?after=-1", "report/sent?limit=0"):
        assert client.get(f"{base}/{bad}", headers=API).status_code == 422, bad

    page = client.get(f"/editor/issues/{seeded.issue_id}/report?kind=bounced", headers=API)
    assert page.status_code == 303  # the editor's pages need a browser session

    # The two who joined get the same frozen issue, by the same planning; nobody else.
    rest = client.post(f"{base}/send-rest", headers=API)
    assert rest.status_code == 202 and rest.json()["planned"] == 2
    session.expire_all()
    issue = session.get_one(Issue, seeded.issue_id)
    assert issue.status == "sent" and issue.sent_at == first_sent
    after = issue_report(session, issue)
    assert after.counts["missing"] == 0 and after.counts["sent"] == 4
    assert after.counts["failed"] == 1  # not tried again
    again = client.post(f"{base}/send-rest", headers=API)
    assert again.status_code == 400 and "every confirmed subscriber" in again.json()["detail"]
    progress = report_page(session, issue, "sent", limit=500)
    assert len(progress.rows) == 4 and progress.next_after is None


def test_the_missing_count_is_its_rows(
    client: TestClient, session: Session, seeded: Seeded
) -> None:
    """The count of "missing" is worked out from a few small counts (not an anti-join of
    everyone): it must still be the number of rows its pages list, whatever changed since."""
    approve(session, seeded.issue_id)
    assert client.post(f"/api/v1/issues/{seeded.issue_id}/send", headers=API).status_code == 202
    session.expire_all()
    issue = session.get_one(Issue, seeded.issue_id)

    def both() -> tuple[int, list[str]]:
        session.expire_all()
        rows = report_page(session, issue, "missing", limit=500).rows
        return issue_report(session, issue).counts["missing"], [r.email for r in rows]

    assert both() == (0, [])
    deliveries = {d.email: d for d in session.scalars(select(Delivery))}
    unsubscribe(session, deliveries["reader2@example.org"].subscription_id, via="link")
    suppress(session, "reader1@example.org", SuppressionReason.MANUAL)  # has a copy
    add_subscriber(session, seeded.list_id, "late-a@example.org", status="confirmed")
    add_subscriber(session, seeded.list_id, "late-d@example.org", status="confirmed")
    suppress(session, "late-d@example.org", SuppressionReason.MANUAL)  # no copy, suppressed
    add_subscriber(session, seeded.list_id, "late-p@example.org", status="pending")
    session.commit()
    assert both() == (1, ["late-a@example.org"])
    unsuppress(session, "late-d@example.org")
    session.commit()
    assert both() == (2, ["late-a@example.org", "late-d@example.org"])


def test_the_editor_report_page_and_progress_json(
    db_url: str, session: Session, seeded: Seeded
) -> None:
    from digest.models import Role

    approve(session, seeded.issue_id)
    grant(db_url, Role.PUBLISHER)
    with TestClient(create_app(), follow_redirects=False) as browser:
        signed_in(browser, Role.PUBLISHER)
        page = browser.get(f"/editor/issues/{seeded.issue_id}")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        sent = browser.post(
            f"/editor/issues/{seeded.issue_id}/send", data={"csrf": token[1], "confirm": "yes"}
        )
        assert sent.status_code == 303
        progress = browser.get(f"/editor/issues/{seeded.issue_id}/progress.json").json()
        assert progress == {
            "status": "sent",
            "pending": 0,
            "sending": 0,
            "sent": 3,
            "failed": 0,
            "skipped": 0,
            "total": 3,
            "settled": 3,
        }
        add_subscriber(session, seeded.list_id, "new@example.org", status="confirmed")
        session.commit()
        report = browser.get(f"/editor/issues/{seeded.issue_id}/report?kind=missing")
        assert report.status_code == 200
        assert (
            "new@example.org" in report.text and "Send to those who have not got it" in report.text
        )
        hostile = browser.get(
            f"/editor/issues/{seeded.issue_id}/report", params={"kind": "sent", "q": HOSTILE}
        )
        assert hostile.status_code == 200 and "<script>alert" not in hostile.text
        assert browser.get(f"/editor/issues/{seeded.issue_id}/report?kind=x").status_code == 400
        unconfirmed = browser.post(
            f"/editor/issues/{seeded.issue_id}/send-rest", data={"csrf": token[1]}
        )
        assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
        rest = browser.post(
            f"/editor/issues/{seeded.issue_id}/send-rest",
            data={"csrf": token[1], "confirm": "yes"},
        )
        assert rest.status_code == 303
        session.expire_all()
        got = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.email == "new@example.org")
        )
        assert got == 1
        # Every change went to the audit log, by route name.
        from digest.models import AuditEntry

        actions = set(session.scalars(select(AuditEntry.action)))
        assert {"send", "send_rest"} <= actions


# --- the same actions from the CLI, and the due check of `digest run` ----------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`digest ARGS` through the real entry point: (exit code, stdout and stderr)."""
    from digest.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_the_cli_edits_schedules_reports_and_digest_run_sends_what_is_due(
    session: Session,
    seeded: Seeded,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from digest.config import reset_settings

    monkeypatch.setenv("DIGEST_SCHEDULE_OVERDUE_MINUTES", "0")
    reset_settings()
    issue = str(seeded.issue_id)
    first = str(seeded.item_ids[0])
    code, out = cli(capsys, "issues", "edit-item", issue, first, "--title", "New <b>words</b>")
    assert code == 0 and "New <b>words</b>" in out
    code, out = cli(capsys, "issues", "add-item", issue, "--title", "T", "--url", "javascript:x")
    assert code != 0 and "http or https" in out
    code, out = cli(
        capsys, "issues", "add-item", issue, "--title", "By hand", "--url", "https://h.example/"
    )
    assert code == 0 and "at position 5" in out
    code, out = cli(capsys, "issues", "schedule", issue, "2030-01-01 09:00")
    assert code != 0 and "only an approved issue" in out
    approve(session, seeded.issue_id)
    code, out = cli(capsys, "issues", "schedule", issue, spring_gap(utcnow().year + 1))
    assert code != 0 and "does not exist in Europe/Paris" in out
    later = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%d 09:00")
    code, out = cli(capsys, "issues", "schedule", issue, later)
    assert code == 0 and f"sent at {later} CE" in out and "(Europe/Paris)" in out
    code, out = cli(capsys, "issues", "show", issue)
    assert f"scheduled: {later} CE" in out and "By hand" in out and "New <b>words</b>" in out
    assert cli(capsys, "issues", "unschedule", issue)[0] == 0
    assert cli(capsys, "issues", "schedule", issue, later)[0] == 0

    # Its time passes while nothing runs the due check: overdue says so; `digest run` sends it.
    session.execute(
        update(Issue)
        .where(Issue.id == seeded.issue_id)
        .values(send_at=utcnow() - timedelta(hours=1))
    )
    session.commit()
    code, out = cli(capsys, "issues", "overdue")
    assert code == 1 and f"coop-news issue {issue}" in out and "still approved" in out
    code, out = cli(capsys, "run")
    assert code == 0 and f"issue {issue}: scheduled send, 3 recipients planned" in out
    session.expire_all()
    assert session.get_one(Issue, seeded.issue_id).status == "sent"
    assert cli(capsys, "issues", "overdue")[0] == 0

    add_subscriber(session, seeded.list_id, "later@example.org", status="confirmed")
    session.commit()
    code, out = cli(capsys, "issues", "report", issue)
    assert code == 0 and "sent: 3" in out and "missing: 1" in out
    code, out = cli(capsys, "issues", "report", issue, "--kind", "missing")
    assert "later@example.org" in out
    assert cli(capsys, "issues", "report", issue, "--kind", "nope")[0] != 0
    code, out = cli(capsys, "issues", "send-rest", issue)
    assert code != 0 and "--yes" in out
    code, out = cli(capsys, "issues", "send-rest", issue, "--yes")
    assert code == 0 and "1 more recipients planned" in out
    assert issue_report(session, session.get_one(Issue, seeded.issue_id)).counts["missing"] == 0


def test_a_late_scheduled_send_is_in_the_overdue_api(
    client: TestClient, session: Session, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    approve(session, seeded.issue_id)
    session.execute(
        update(Issue)
        .where(Issue.id == seeded.issue_id)
        .values(send_at=utcnow() - timedelta(hours=2))
    )
    session.commit()
    rows = client.get("/api/v1/scheduled/overdue", headers=API).json()
    assert [(r["state"], r["issue_id"]) for r in rows] == [("send", seeded.issue_id)]
    assert "still approved" in rows[0]["error"]
