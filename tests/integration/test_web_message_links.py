"""Every link in a real message works: render an issue, personalise its message as delivery
does, then follow the List-Unsubscribe URL and every link the HTML part points at us."""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import default

from fastapi.testclient import TestClient
from sqlalchemy import select

from digest.delivery.message import build_template
from digest.delivery.recipient import Recipient
from digest.models import Event, Issue, Subscription
from digest.render.issue import render_issue
from digest.web.app import create_app
from tests.fixtures.sample_issue import sample_issue_view
from tests.helpers import signer
from tests.integration.test_web_pages import seed

PUBLIC_URL = "http://testserver"  # TestClient's host: the message's links point at the app


def _personalised_message(session, seeded) -> EmailMessage:
    rendered = render_issue(sample_issue_view(items=6))
    issue = session.get(Issue, seeded.issue_id)
    issue.html, issue.text, issue.slot_marker = rendered.html, rendered.text, rendered.slots.marker
    session.commit()
    template = build_template(
        signer=signer(),
        issue_id=issue.id,
        subject=issue.subject,
        html_body=rendered.html,
        text_body=rendered.text,
        slots=rendered.slots,
        list_slug="research",
        list_name="Research News",
        from_name="Research",
        from_email="news@example.org",
        public_url=PUBLIC_URL,
    )
    raw = template.personalise(
        Recipient(
            delivery_id=1,
            subscription_id=seeded.subscription_id,
            email="ada.lovelace@example.org",
            name="Ada",
        )
    )
    message = email.message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_every_link_in_a_personalised_message_works(db_url, session) -> None:
    seeded = seed(session)
    message = _personalised_message(session, seeded)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [one_click_url] = re.findall(r"<(http[^>]+)>", message["List-Unsubscribe"])

    html_part = message.get_body(("html",))
    assert html_part is not None
    ours = sorted(
        set(re.findall(rf'href="({re.escape(PUBLIC_URL)}/[^"]+)"', html_part.get_content()))
    )
    kinds = {url.removeprefix(PUBLIC_URL)[:3] for url in ours}
    assert {"/u/", "/p/", "/v/"} <= kinds, ours
    assert one_click_url in ours  # the header and the footer link are the same URL

    client = TestClient(create_app(), follow_redirects=False)
    for url in ours:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "[[digest" not in response.text
    view = client.get(next(u for u in ours if "/v/" in u))
    assert "Ada" not in view.text and "ada.lovelace" not in view.text  # nobody's details

    # What a mail provider does with the header: a bare one-click POST, no redirect.
    response = client.post(one_click_url, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "location" not in response.headers
    session.expire_all()
    assert session.get(Subscription, seeded.subscription_id).status == "unsubscribed"
    assert list(session.scalars(select(Event.detail).where(Event.kind == "unsubscribed"))) == [
        {"via": "one-click"}
    ]
