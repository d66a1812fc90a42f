"""The public pages on both stores, through FastAPI's TestClient: every link in a message works."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import Message, Receive, Scope, Send

from digest.db import session_factory
from digest.models import Event, Issue, MailingList, Subscriber, Subscription
from digest.placeholders import Slots
from digest.web.app import create_app
from tests.helpers import token

ph = Slots.new()
ISSUE_HTML = (
    f"<!doctype html><html><body><p>Hi {ph.NAME},</p>"
    f"<a href='{ph.VIEW_ONLINE_URL}'>View online</a>"
    f"<h1>Research news</h1><p>Sent to {ph.EMAIL}</p>"
    f"<a href='{ph.UNSUBSCRIBE_URL}'>Unsubscribe</a> <a href='{ph.PREFERENCES_URL}'>Preferences</a>"
    "</body></html>"
)


@dataclass(frozen=True)
class Seeded:
    subscription_id: int
    subscriber_id: int
    list_id: int
    issue_id: int


def seed(session: Session, *, status: str = "confirmed") -> Seeded:
    mailing_list = MailingList(slug="research", name="Research News", description="Monthly.")
    subscriber = Subscriber(email="ada.lovelace@example.org", name="Ada")
    session.add_all([mailing_list, subscriber])
    session.flush()
    subscription = Subscription(list_id=mailing_list.id, subscriber_id=subscriber.id, status=status)
    issue = Issue(
        list_id=mailing_list.id,
        number=1,
        subject="Research News: May",
        html=ISSUE_HTML,
        slot_marker=ph.marker,
    )
    session.add_all([subscription, issue])
    session.commit()
    return Seeded(subscription.id, subscriber.id, mailing_list.id, issue.id)


@pytest.fixture
def seeded(session: Session) -> Seeded:
    return seed(session)


@pytest.fixture
def client(db_url: str) -> TestClient:
    # A fresh client per test: its cookie jar starts (and, we check, stays) empty.
    return TestClient(create_app(), follow_redirects=False)


def unsubscribe_path(subscription_id: int) -> str:
    return f"/u/{token('unsubscribe', subscription_id)}"


def events(session: Session, kind: str) -> list[Event]:
    session.expire_all()
    return list(session.scalars(select(Event).where(Event.kind == kind)))


def subscription(session: Session, seeded: Seeded) -> Subscription:
    session.expire_all()
    row = session.get(Subscription, seeded.subscription_id)
    assert row is not None
    return row


def test_get_shows_a_button_and_changes_nothing(client, session, seeded) -> None:
    response = client.get(unsubscribe_path(seeded.subscription_id))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Research News" in response.text
    assert '<form method="post"' in response.text
    assert ">Unsubscribe</button>" in response.text
    # The page shows enough of the address to recognise it, not the address itself.
    assert "ada.lovelace@example.org" not in response.text
    assert "a•••@example.org" in response.text
    # A HEAD (link checkers, previews) changes nothing either.
    assert client.head(unsubscribe_path(seeded.subscription_id)).status_code == 200
    assert subscription(session, seeded).status == "confirmed"
    assert events(session, "unsubscribed") == []


def test_post_from_the_page_unsubscribes_and_records_an_event(client, session, seeded) -> None:
    response = client.post(unsubscribe_path(seeded.subscription_id))
    assert response.status_code == 200
    assert "You’re unsubscribed" in response.text
    row = subscription(session, seeded)
    assert row.status == "unsubscribed"
    assert row.unsubscribed_at is not None
    [event] = events(session, "unsubscribed")
    assert event.detail == {"via": "web"}
    assert (event.subscriber_id, event.list_id) == (seeded.subscriber_id, seeded.list_id)


@pytest.mark.parametrize("encoding", ["urlencoded", "form-data"])
def test_one_click_post_needs_no_cookie_and_never_redirects(
    client, session, seeded, encoding
) -> None:
    url = unsubscribe_path(seeded.subscription_id)
    if encoding == "urlencoded":
        response = client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    else:
        response = client.post(url, files={"List-Unsubscribe": (None, b"One-Click")})
        assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert "cookie" not in response.request.headers
    assert response.status_code == 200
    assert not response.is_redirect and "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert subscription(session, seeded).status == "unsubscribed"
    [event] = events(session, "unsubscribed")
    assert event.detail == {"via": "one-click"}


def test_a_second_unsubscribe_is_idempotent(client, session, seeded) -> None:
    url = unsubscribe_path(seeded.subscription_id)
    first = client.post(url, data={"List-Unsubscribe": "One-Click"})
    stamp = subscription(session, seeded).unsubscribed_at
    second = client.post(url, data={"List-Unsubscribe": "One-Click"})
    third = client.post(url)
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert subscription(session, seeded).unsubscribed_at == stamp
    assert len(events(session, "unsubscribed")) == 1
    # Once unsubscribed, the link shows the done page with a way back, not the button again.
    page = client.get(url)
    assert "You’re unsubscribed" in page.text and "Resubscribe" in page.text


@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_links_get_a_clear_400_or_404_never_a_500(client, session, seeded, method) -> None:
    good = token("unsubscribe", seeded.subscription_id)
    tampered = good[:-3] + ("xyz" if not good.endswith("xyz") else "abc")
    bad_paths = {
        "/u/not-a-token": 400,
        f"/u/{tampered}": 400,
        f"/u/{token('unsubscribe', seeded.subscription_id, 'someone-else')}": 400,
        f"/u/{token('view', seeded.subscription_id)}": 400,  # wrong purpose
        f"/u/{token('preferences', seeded.subscription_id)}": 400,
        f"/p/{good}": 400,
        f"/u/{'A' * 5000}": 400,
        f"/u/{token('unsubscribe', seeded.subscription_id + 999)}": 404,
        f"/p/{token('preferences', seeded.subscription_id + 999)}": 404,
    }
    for path, expected in bad_paths.items():
        response = getattr(client, method)(path)
        assert response.status_code == expected, path
        assert response.headers["content-type"].startswith("text/html")
        assert "doesn’t work" in response.text or "couldn’t find" in response.text
    assert subscription(session, seeded).status == "confirmed"
    assert events(session, "unsubscribed") == []


def test_view_online_shows_the_issue_with_neutral_placeholders(client, seeded) -> None:
    link = token("view", seeded.issue_id)
    response = client.get(f"/v/{link}")
    assert response.status_code == 200
    assert "<h1>Research news</h1>" in response.text
    assert "[[digest" not in response.text
    assert "<p>Hi,</p>" in response.text and "Sent to" not in response.text
    assert "href='/links'>Unsubscribe" in response.text
    assert f"href='/v/{link}'>View online" in response.text
    assert client.get("/links").status_code == 200
    # A view token names an issue, never a subscription, and the reverse.
    assert client.get(f"/v/{token('unsubscribe', seeded.issue_id)}").status_code == 400
    assert client.get(f"/v/{token('view', seeded.issue_id + 50)}").status_code == 404


def test_view_online_of_an_issue_not_rendered_yet_is_404(client, session, seeded) -> None:
    issue = Issue(list_id=seeded.list_id, number=2, subject="Draft")
    session.add(issue)
    session.commit()
    assert client.get(f"/v/{token('view', issue.id)}").status_code == 404


def test_preferences_save_name_unsubscribe_and_resubscribe(client, session, seeded) -> None:
    path = f"/p/{token('preferences', seeded.subscription_id)}"
    page = client.get(path)
    assert page.status_code == 200
    assert 'value="Ada"' in page.text and "Subscribed" in page.text

    saved = client.post(path, data={"action": "save", "name": " Ada\u200b \n King "})
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{path}?done=saved"
    session.expire_all()
    subscriber = session.get(Subscriber, seeded.subscriber_id)
    assert subscriber is not None and subscriber.name == "Ada King"
    [event] = events(session, "preferences_updated")
    assert event.detail == {"changed": ["name"]}
    assert "Your preferences have been saved." in client.get(saved.headers["location"]).text

    gone = client.post(path, data={"action": "unsubscribe"})
    assert gone.headers["location"].endswith("?done=unsubscribed")
    assert subscription(session, seeded).status == "unsubscribed"
    assert events(session, "unsubscribed")[0].detail == {"via": "preferences"}

    back = client.post(path, data={"action": "resubscribe"})
    assert back.headers["location"].endswith("?done=resubscribed")
    row = subscription(session, seeded)
    # The signed link reached the address, so the subscription comes back confirmed.
    assert (row.status, row.unsubscribed_at) == ("confirmed", None)
    assert row.confirmed_at is not None
    assert len(events(session, "resubscribed")) == 1

    assert client.post(path, data={"action": "explode"}).status_code == 400


def test_confirm_link_shows_a_button_then_confirms(client, session) -> None:
    seeded = seed(session, status="pending")
    path = f"/c/{token('confirm', seeded.subscription_id)}"
    assert "Yes, subscribe me" in client.get(path).text
    assert subscription(session, seeded).status == "pending"
    done = client.post(path)
    assert done.status_code == 200 and "Subscription confirmed" in done.text
    row = subscription(session, seeded)
    assert row.status == "confirmed" and row.confirmed_at is not None
    client.post(path)
    assert len(events(session, "confirmed")) == 1


def test_pages_send_security_headers(client, seeded) -> None:
    for path in (
        unsubscribe_path(seeded.subscription_id),
        f"/v/{token('view', seeded.issue_id)}",
        "/u/forged",
    ):
        headers = client.get(path).headers
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"


def test_readyz_checks_the_database(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_unknown_path_is_a_404_page(client) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert "couldn’t find" in response.text


def test_request_commits_before_answering(db_url, seeded) -> None:
    """The page only says "unsubscribed" for a change another connection can already see."""
    app = create_app()
    seen_at_response_start: list[int] = []

    def unsubscribed() -> int:
        with session_factory(db_url)() as other:
            query = select(func.count()).where(Subscription.status == "unsubscribed")
            return int(other.scalar(query) or 0)

    # TestClient returns only once the app is done, commit or not: look when the answer starts.
    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen_at_response_start.append(unsubscribed())
            await send(message)

        await app(scope, receive, watching_send)

    response = TestClient(watched).post(unsubscribe_path(seeded.subscription_id))
    assert response.status_code == 200
    assert seen_at_response_start == [1]


def test_the_app_signs_and_reads_links_with_its_own_settings(
    session: Session, db_url: str, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app made with settings A checks and signs links with A's key, whatever the
    process's environment says (a second app, a test, a worker's own settings): no page
    reads the global settings behind its app's back."""
    from digest.config import Settings, reset_settings

    app = create_app(Settings(database_url=db_url, secret_key="key-of-the-app"))
    monkeypatch.setenv("DIGEST_SECRET_KEY", "key-of-the-environment")
    reset_settings()
    client = TestClient(app, follow_redirects=False)
    ours = token("unsubscribe", seeded.subscription_id, "key-of-the-app")
    page = client.get(f"/u/{ours}")
    assert page.status_code == 200
    # The page's own link to the preferences is signed with the app's key too.
    prefs = token("preferences", seeded.subscription_id, "key-of-the-app")
    assert f"/p/{prefs}" in page.text
    theirs = token("unsubscribe", seeded.subscription_id, "key-of-the-environment")
    assert client.get(f"/u/{theirs}").status_code == 400
    view = token("view", seeded.issue_id, "key-of-the-app")
    assert client.get(f"/v/{view}").status_code == 200
