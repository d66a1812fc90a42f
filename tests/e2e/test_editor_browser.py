"""The editor in a real browser (Debian's Chromium via Playwright): open an issue, look at
its preview, drop and move items, approve it; lists and sources pages on a phone and a desktop.

The browser and the screenshot folder come from tests/e2e/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from digest.models import Issue, Source
from digest.web.app import create_app
from tests.accounts import ADMIN, PASSWORD, grant
from tests.e2e import test_web_browser as web
from tests.e2e.conftest import ON_POSTGRES
from tests.integration.test_editor_api import TITLES, order, seed_issue
from tests.integration.test_web_http import live_server

DESKTOP, PHONE = web.DESKTOP, web.PHONE
WIDE = {"width": 1440, "height": 1000}


def editor_page(
    browser: Any,
    viewport: dict[str, int],
    base_url: str,
    email: str = ADMIN,
    password: str = PASSWORD,
) -> Any:
    """A page in a fresh context that can reach nothing beyond 127.0.0.1, signed in through
    the sign-in form (or not, with a wrong password)."""
    page = web.new_page(browser, viewport)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.goto(f"{base_url}/editor/signin")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


@contextmanager
def editor_server() -> Iterator[str]:
    app = create_app()
    with live_server(app) as base_url:
        # Forms are accepted from DIGEST_PUBLIC_URL's origin only: here, this server's.
        app.state.settings = app.state.settings.model_copy(update={"public_url": base_url})
        yield base_url


@pytest.fixture
def admin(db_url: str) -> None:
    grant(db_url)


@ON_POSTGRES
def test_open_an_issue_drop_an_item_and_approve(
    browser, admin, session: Session, shots: Path
) -> None:
    seeded = seed_issue(session, subscribers=12)
    with editor_server() as base_url:
        page = editor_page(browser, WIDE, base_url)
        page.goto(f"{base_url}/editor")
        page.get_by_role("heading", name="Issues").wait_for()
        page.screenshot(path=shots / "issues-desktop.png", full_page=True)
        page.get_by_role("link", name="#1 · Co-op News").click()
        page.get_by_role("heading", name="Items").wait_for()

        # The preview frame shows the email as a subscriber gets it.
        frame = page.frame_locator("iframe[title^='Desktop preview']")
        frame.get_by_text(TITLES[0]).first.wait_for()
        page.screenshot(path=shots / "issue-desktop.png", full_page=True)

        # Drop the second item.
        page.get_by_role("button", name=f"Drop: {TITLES[1]}").click()
        page.get_by_role("status").filter(has_text="Item dropped").wait_for()
        a, _, c, d, e = seeded.item_ids
        assert order(session, seeded.issue_id) == [a, c, d, e]
        assert page.get_by_role("button", name=f"Drop: {TITLES[1]}").count() == 0

        # Move the last one up, edit the intro.
        page.get_by_role("button", name=f"Move up: {TITLES[4]}").click()
        page.get_by_role("status").filter(has_text="Item moved").wait_for()
        assert order(session, seeded.issue_id) == [a, c, e, d]
        page.get_by_role("textbox", name="Intro").fill("Four stories from the movement this month.")
        page.get_by_role("button", name="Save changes").click()
        page.get_by_role("status").filter(has_text="Changes saved").wait_for()
        frame = page.frame_locator("iframe[title^='Desktop preview']")
        frame.get_by_text("Four stories from the movement").wait_for()

        page.get_by_role("link", name="Mobile").click()
        mobile = page.frame_locator("iframe[title^='Mobile preview']")
        mobile.get_by_text(TITLES[0]).first.wait_for()
        page.screenshot(path=shots / "issue-mobile-preview-desktop.png", full_page=True)
        page.get_by_role("link", name="Plain text").click()
        assert TITLES[0] in page.locator("pre.text-part").inner_text()

        page.get_by_role("button", name="Approve issue").click()
        page.get_by_role("status").filter(has_text="Approved").wait_for()
        session.expire_all()
        assert session.get(Issue, seeded.issue_id).status == "approved"
        assert page.get_by_role("button", name="Send issue").is_visible()
        page.screenshot(path=shots / "issue-approved-desktop.png", full_page=True)
        assert page.blocked == [] and page.console_errors == []
        page.context.close()

        # The same issue on a phone, then lists and sources.
        page = editor_page(browser, PHONE, base_url)
        page.goto(f"{base_url}/editor/issues/{seeded.issue_id}?view=mobile")
        page.frame_locator("iframe[title^='Mobile preview']").get_by_text(TITLES[0]).wait_for()
        page.screenshot(path=shots / "issue-phone.png", full_page=True)
        page.goto(f"{base_url}/editor/lists")
        page.screenshot(path=shots / "lists-phone.png", full_page=True)
        assert page.blocked == [] and page.console_errors == []
        page.context.close()

        session.add(
            Source(
                name="Regional network",
                url="https://network.example.org/feed.xml",
                kind="feed",
                consecutive_failures=3,
                last_error="HTTP 503 Service Unavailable",
            )
        )
        session.commit()
        page = editor_page(browser, DESKTOP, base_url)
        page.goto(f"{base_url}/editor/lists")
        page.screenshot(path=shots / "lists-desktop.png", full_page=True)
        page.goto(f"{base_url}/editor/sources")
        page.get_by_text("Failing · 3 in a row").wait_for()
        page.screenshot(path=shots / "sources-desktop.png", full_page=True)
        assert page.blocked == [] and page.console_errors == []
        page.context.close()


def test_wrong_password_gets_no_editor(browser, admin, session: Session) -> None:
    seed_issue(session)
    with editor_server() as base_url:
        page = editor_page(browser, DESKTOP, base_url, password="wrong password")
        page.get_by_role("alert").filter(has_text="Wrong address or password").wait_for()
        page.goto(f"{base_url}/editor/issues")
        assert page.url.startswith(f"{base_url}/editor/signin?next=")
        assert TITLES[0] not in page.content()
        page.context.close()
