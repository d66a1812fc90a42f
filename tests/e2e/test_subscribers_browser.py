"""The admin's subscriber pages in a real browser: a CSV of a few hundred rows uploaded with
the consent box ticked, the report of what was imported and which lines were rejected and
why, then the search and one subscriber's page. Screenshots as tests/e2e/conftest.py keeps
them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from digest.subscribers.lists import create_list
from digest.subscribers.service import count_by_status
from tests.accounts import grant
from tests.e2e.test_editor_browser import WIDE, editor_page, editor_server

ROWS = 300


def test_an_admin_uploads_a_csv_and_reads_the_report(
    browser, db_url: str, session: Session, shots: Path, tmp_path: Path
) -> None:
    lst = create_list(session, slug="members", name="Members")
    grant(session)
    csv_path = tmp_path / "members.csv"
    lines = ["email,name,city"]
    lines += [f"member{i}@example.org,Member {i},Town {i % 7}" for i in range(ROWS)]
    lines += ["not-an-address,Nobody,", "member7@example.org,Twice,"]  # lines 302 and 303
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with editor_server() as base_url:
        page = editor_page(browser, WIDE, base_url)
        page.get_by_role("link", name="Subscribers").click()
        page.get_by_role("link", name="Import a CSV").click()
        page.get_by_label("List", exact=True).select_option(label="Members")
        page.get_by_label("CSV file").set_input_files(str(csv_path))
        page.get_by_label("Each person’s consent to this list was recorded").check()
        page.screenshot(path=shots / "subscribers-import-form.png", full_page=True)
        page.get_by_role("button", name="Import").click()
        page.get_by_role("heading", name="Imported").wait_for()
        stats = page.locator("dl.stats").inner_text()
        assert "300" in stats
        rejected = page.locator("#rejected tbody tr")
        assert rejected.count() == 2
        assert rejected.nth(0).inner_text().startswith("302")
        assert "invalid address" in rejected.nth(0).inner_text()
        assert "duplicate of an earlier row" in rejected.nth(1).inner_text()
        page.screenshot(path=shots / "subscribers-import-report.png", full_page=True)
        assert count_by_status(session, lst.id) == {"confirmed": ROWS}

        nav = page.get_by_role("navigation", name="Sections")
        nav.get_by_role("link", name="Subscribers").click()
        page.get_by_label("Address or name").fill("member12")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name="member12@example.org").click()
        page.get_by_role("heading", name="member12@example.org").wait_for()
        page.get_by_text("Not suppressed").wait_for()
        page.screenshot(path=shots / "subscriber-page.png", full_page=True)
        assert page.blocked == []
        page.context.close()
