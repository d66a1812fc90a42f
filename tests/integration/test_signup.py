"""Public sign-up with double opt-in, end to end through the web app and the maildir outbox."""

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import Subscription, Suppression
from digest.subscribers.lists import create_list
from digest.web.app import create_app
from tests.helpers import outbox_messages

LINK = re.compile(r"https?://\S+/c/(\S+)")


def test_sign_up_confirm_and_privacy(session: Session, db_url: str, tmp_path: Path) -> None:
    create_list(session, slug="news", name="Research News")
    session.commit()
    client = TestClient(create_app(), follow_redirects=False)
    assert "Subscribe to Research News" in client.get("/s/news").text
    assert client.get("/s/nope").status_code == 404

    page = client.post("/s/news", data={"email": "Ada@Example.org", "name": "Ada"})
    assert page.status_code == 200 and "Check your inbox" in page.text
    assert session.scalar(select(Subscription.status)) == "pending"

    (msg,) = outbox_messages(Path("outbox"))
    assert msg["To"] == "ada@example.org"
    body = msg.get_body(("plain",))
    assert body is not None
    match = LINK.search(str(body.get_content()))
    assert match is not None
    token = match.group(1)
    assert "Yes, subscribe me" in client.get(f"/c/{token}").text
    assert client.post(f"/c/{token}").status_code == 200
    session.expire_all()
    assert session.scalar(select(Subscription.status)) == "confirmed"

    # Signing up again once confirmed sends nothing and the page says the same thing.
    again = client.post("/s/news", data={"email": "ada@example.org"})
    assert "Check your inbox" in again.text
    assert len(outbox_messages(Path("outbox"))) == 1


def test_bad_address_bot_and_suppressed(session: Session, db_url: str) -> None:
    create_list(session, slug="news", name="News")
    session.add(Suppression(email="gone@example.org", reason="bounce"))
    session.commit()
    client = TestClient(create_app(), follow_redirects=False)
    bad = client.post("/s/news", data={"email": "not an address"})
    assert bad.status_code == 422 and "invalid address" in bad.text
    bot = client.post("/s/news", data={"email": "bot@example.org", "website": "http://spam"})
    assert bot.status_code == 200
    assert session.scalar(select(Subscription.id)) is None
    client.post("/s/news", data={"email": "gone@example.org"})
    assert not Path("outbox").exists() or not list((Path("outbox") / "new").iterdir())
