"""An admin runs lists and sources in a real browser (Debian's Chromium): a list is created
with its settings (a refused time zone first, shown beside its field), a source is added to it
after the preview of the items it yields, fetched now, and its health and history are shown.
Screenshots as tests/e2e/conftest.py keeps them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.models import Item, MailingList, Source
from tests.accounts import grant
from tests.e2e.conftest import ON_POSTGRES
from tests.e2e.test_editor_browser import WIDE, editor_page, editor_server
from tests.fixtures.sources.server import serving
from tests.integration.test_lists_sources_pages import listing


@ON_POSTGRES
def test_a_list_is_created_and_a_source_added_with_its_preview(
    browser, db_url: str, session: Session, shots: Path
) -> None:
    grant(session)
    with serving() as site, editor_server() as base_url:
        site.add("/town", listing(8))
        page = editor_page(browser, WIDE, base_url)
        nav = page.get_by_role("navigation", name="Sections")
        nav.get_by_role("link", name="Lists").click()
        page.get_by_role("link", name="New list").click()
        page.get_by_label("Slug").fill("town-hall")
        page.get_by_label("Name", exact=True).fill("Town Hall Weekly")
        page.get_by_label("Time zone").fill("Europe/Atlantis")
        page.get_by_label("Schedule", exact=True).fill("weekly mon 08:00")
        page.get_by_label("Reach readers at").fill("09:00")
        page.get_by_label("Reply-to address").fill("letters@town.example.org")
        page.get_by_label("Opt-in").select_option("single")
        page.get_by_role("button", name="Create list").click()
        # Refused: the reason beside the field, the other fields as typed.
        page.locator("#e-timezone").wait_for()
        assert "unknown time zone" in page.locator("#e-timezone").inner_text()
        assert page.get_by_label("Name", exact=True).input_value() == "Town Hall Weekly"
        page.screenshot(path=shots / "list-new-refused.png", full_page=True)
        page.get_by_label("Time zone").fill("Europe/Paris")
        page.get_by_role("button", name="Create list").click()
        page.get_by_role("heading", name="Town Hall Weekly").wait_for()
        page.get_by_text("List created.").wait_for()
        assert "weekly mon 08:00 (Europe/Paris)" in page.locator(".page-head").inner_text()
        page.screenshot(path=shots / "list-created.png", full_page=True)

        page.get_by_role("link", name="Add a new source to this list").click()
        page.get_by_label("Address").fill(site.url("/town"))
        page.get_by_role("button", name="Try it").click()
        page.get_by_role("heading", name="Preview: 8 items").wait_for()
        preview = page.locator("#preview")
        assert "Council notice number 0" in preview.inner_text()
        assert "Council notice number 7" in preview.inner_text()
        page.screenshot(path=shots / "source-preview.png", full_page=True)
        assert session.scalar(select(func.count()).select_from(Source)) == 0  # nothing stored

        page.get_by_role("button", name="Add this source").click()
        page.get_by_text("Source added.").wait_for()
        page.get_by_role("heading", name="Town hall news").wait_for()
        page.get_by_role("button", name="Fetch now").click()
        page.get_by_text("Fetched: 8 items, 8 new.").wait_for()
        health = page.locator("#health").inner_text()
        assert "Healthy" in health and "town-hall" in health
        history = page.locator("#history tbody tr")
        assert history.count() == 1 and "New items" in history.first.inner_text()
        page.screenshot(path=shots / "source-fetched.png", full_page=True)

        # The list now shows its source.
        page.locator("#health").get_by_role("link", name="town-hall").click()
        page.get_by_role("link", name="Town hall news").wait_for()
        # The one console error is the refused form's own 422.
        assert page.blocked == []
        assert [e for e in page.console_errors if "status of 422" not in e] == []
        page.context.close()

    lst = session.scalar(select(MailingList).where(MailingList.slug == "town-hall"))
    assert lst is not None and lst.opt_in == "single" and lst.send_local_time == "09:00"
    assert [s.url for s in lst.sources] == [site.url("/town")]
    assert session.scalar(select(func.count()).select_from(Item)) == 8
