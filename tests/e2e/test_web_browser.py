"""Every link in a message, clicked in a real browser: Debian's Chromium driven by Playwright.

uvicorn serves the app on a free port of 127.0.0.1; the test opens an unsubscribe link,
clicks the button, checks the store, then opens the issue's view-online page. The browser and
the screenshot folder come from tests/e2e/conftest.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from digest.models import Event, Issue, Subscription
from digest.render.issue import render_issue
from digest.web.app import create_app
from tests.e2e.conftest import ON_POSTGRES
from tests.fixtures.sample_issue import sample_issue_view
from tests.helpers import token
from tests.integration.test_web_http import live_server
from tests.integration.test_web_pages import seed

PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
LOCAL = ("http://127.0.0.1:", "data:", "about:")


def new_page(
    browser: Any, viewport: dict[str, int], color_scheme: str = "light", **context_options: Any
) -> Any:
    """A page in a fresh context (no cookies) that can reach nothing beyond 127.0.0.1."""
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme, **context_options)
    blocked: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(LOCAL):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.blocked = blocked
    return page


@ON_POSTGRES
def test_unsubscribe_by_clicking_the_button(browser, db_url, session, shots) -> None:
    seeded = seed(session)
    link = token("unsubscribe", seeded.subscription_id)
    with live_server(create_app()) as base_url:
        looks = (("phone", PHONE, "light"), ("desktop", DESKTOP, "light"), ("dark", PHONE, "dark"))
        for name, viewport, scheme in looks:
            page = new_page(browser, viewport, scheme)
            page.goto(f"{base_url}/u/{link}")
            assert page.title().startswith("Unsubscribe from Research News")
            page.screenshot(path=shots / f"unsubscribe-{name}.png", full_page=True)
            assert page.blocked == []
            page.context.close()
        session.expire_all()
        assert session.get(Subscription, seeded.subscription_id).status == "confirmed"

        page = new_page(browser, PHONE)
        page.goto(f"{base_url}/u/{link}")
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You’re unsubscribed").wait_for()
        page.screenshot(path=shots / "unsubscribed-phone.png", full_page=True)
        assert page.url == f"{base_url}/u/{link}"  # answered in place, no redirect
        session.expire_all()
        assert session.get(Subscription, seeded.subscription_id).status == "unsubscribed"
        [detail] = session.scalars(select(Event.detail).where(Event.kind == "unsubscribed"))
        assert detail == {"via": "web"}

        # Changed their mind: the done page's resubscribe button leads to the preferences.
        page.get_by_role("button", name="Resubscribe").click()
        page.get_by_role("status").filter(has_text="Welcome back").wait_for()
        page.screenshot(path=shots / "preferences-phone.png", full_page=True)
        session.expire_all()
        assert session.get(Subscription, seeded.subscription_id).status == "confirmed"
        assert page.get_by_text("Subscribed", exact=True).is_visible()

        # Save a name on the preferences page.
        page.get_by_label("Your name").fill("Ada King")
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_role("status").filter(has_text="saved").wait_for()
        assert page.get_by_label("Your name").input_value() == "Ada King"
        assert page.blocked == []
        page.context.close()


@ON_POSTGRES
def test_view_online_and_a_forged_link(browser, db_url, session, shots) -> None:
    seeded = seed(session)
    issue = session.get(Issue, seeded.issue_id)
    # The real renderer's output, without remote images: nothing may leave 127.0.0.1.
    rendered = render_issue(sample_issue_view(items=8, image_base=None))
    issue.html, issue.slot_marker = rendered.html, rendered.slots.marker
    session.commit()
    with live_server(create_app()) as base_url:
        for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            page = new_page(browser, viewport)
            response = page.goto(f"{base_url}/v/{token('view', seeded.issue_id)}")
            assert response is not None and response.status == 200
            assert page.get_by_text("News on Social and Solidarity Economy").first.is_visible()
            assert "[[digest" not in page.content()
            page.screenshot(path=shots / f"view-online-{name}.png", full_page=True)
            page.screenshot(path=shots / f"view-online-{name}-top.png")
            page.get_by_role("link", name="Unsubscribe").last.scroll_into_view_if_needed()
            page.screenshot(path=shots / f"view-online-{name}-footer.png")
            assert page.blocked == []
            page.context.close()

        page = new_page(browser, DESKTOP)
        page.goto(f"{base_url}/v/{token('view', seeded.issue_id)}")
        page.get_by_role("link", name="Unsubscribe").first.click()
        page.get_by_role("heading", name="Manage your subscription").wait_for()
        page.screenshot(path=shots / "links-desktop.png", full_page=True)

        response = page.goto(f"{base_url}/u/forged-token")
        assert response is not None and response.status == 400
        assert page.get_by_role("heading", name="This link doesn’t work").is_visible()
        page.set_viewport_size(PHONE)
        page.screenshot(path=shots / "error-phone.png", full_page=True)
        assert page.blocked == []
        page.context.close()
