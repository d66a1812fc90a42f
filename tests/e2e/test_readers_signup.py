"""Sign-up in a real browser suggests the reader's time zone and offers the list's editions
(issue 11): Chromium told it is in Tokyo posts Asia/Tokyo, and the new subscriber the
confirmation creates has that zone and the language chosen."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.models import MailingList, SignupRequest, Subscriber
from digest.web.app import create_app
from tests.e2e.test_web_browser import PHONE, new_page
from tests.integration.test_web_http import live_server


def test_sign_up_with_the_browsers_time_zone_and_a_language(
    browser: object, db_url: str, session: Session
) -> None:
    session.add(MailingList(slug="sse", name="SSE News", editions=["fr", "es"]))
    session.commit()
    with live_server(create_app()) as base_url:
        page = new_page(browser, PHONE, timezone_id="Asia/Tokyo")
        page.goto(f"{base_url}/s/sse")
        assert page.locator("#timezone").input_value() == "Asia/Tokyo"
        page.get_by_label("Email address").fill("kenji@example.org")
        page.get_by_label("Language").select_option("fr")
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        assert page.blocked == []
        page.context.close()
        session.expire_all()
        request = session.scalars(select(SignupRequest)).one()
        assert (request.language, request.timezone) == ("fr", "Asia/Tokyo")
        # The confirmation, handled after the response, makes the subscriber with both.
        deadline = time.monotonic() + 30
        while (subscriber := session.scalars(select(Subscriber)).one_or_none()) is None:
            assert time.monotonic() < deadline, "no subscriber: the confirmation never ran"
            time.sleep(0.05)
            session.rollback()
    assert (subscriber.language, subscriber.timezone) == ("fr", "Asia/Tokyo")
