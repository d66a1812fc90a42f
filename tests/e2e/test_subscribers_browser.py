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
from tests.e2e.conftest import ON_POSTGRES
from tests.e2e.test_editor_browser import WIDE, editor_page, editor_server

ROWS = 300


@ON_POSTGRES
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


BIG_ROWS = 20_000


@ON_POSTGRES
def test_the_progress_bar_then_an_admin_adds_edits_exports_and_erases(
    browser, db_url: str, session: Session, shots: Path, tmp_path: Path
) -> None:
    """The upload shows its progress (the browser's upload throttled so that there is some to
    see), then the report; a subscriber is added by hand, edited, exported and erased after
    the confirmation box is ticked."""
    lst = create_list(session, slug="members", name="Members")
    grant(session)
    csv_path = tmp_path / "many.csv"
    rows = [f"reader{i}@example.org,Reader {i}" for i in range(BIG_ROWS)]
    csv_path.write_text("email,name\n" + "\n".join(rows) + "\nbroken,Nobody\n", encoding="utf-8")
    with editor_server() as base_url:
        page = editor_page(browser, WIDE, base_url)
        page.goto(f"{base_url}/editor/subscribers/import")
        # Every text the progress label shows, in order (the report replaces it at the end).
        page.evaluate(
            """() => {
              window.seen = [];
              const label = document.querySelector('[data-progress-label]');
              new MutationObserver(() => window.seen.push(label.textContent))
                .observe(label, {childList: true, characterData: true, subtree: true});
            }"""
        )
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 0,
                "downloadThroughput": -1,
                "uploadThroughput": 256 * 1024,
            },
        )
        page.get_by_label("List", exact=True).select_option(label="Members")
        page.get_by_label("CSV file").set_input_files(str(csv_path))
        page.get_by_role("button", name="Import").click()
        bar = page.locator("#upload-progress progress")
        bar.wait_for(state="visible")
        page.wait_for_function(
            "() => window.seen.some(t => /Uploaded [1-9][0-9]?%/.test(t))", timeout=60_000
        )
        page.screenshot(path=shots / "subscribers-import-progress.png", full_page=True)
        page.get_by_role("heading", name="Imported").wait_for(timeout=120_000)
        seen = page.evaluate("() => window.seen")
        percents = [int(t.split("%")[0].split()[-1]) for t in seen if "%" in t]
        assert percents == sorted(percents) and len(percents) >= 2, seen
        assert "Uploaded. Importing the rows…" in seen
        rejected = page.locator("#rejected tbody tr")
        assert rejected.count() == 1 and rejected.nth(0).inner_text().startswith(str(BIG_ROWS + 2))
        # Consent was not ticked: every new row waits for its confirmation mail.
        assert count_by_status(session, lst.id) == {"pending": BIG_ROWS}
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

        # By hand, consent recorded: confirmed at once.
        page.goto(f"{base_url}/editor/subscribers")
        page.get_by_role("link", name="Add a subscriber").click()
        page.get_by_label("Email address").fill("ana.lopez@coop.example")
        page.get_by_label("Name").fill("Ana López")
        page.get_by_label("Members").check()
        page.get_by_label("This person’s consent to these lists was recorded").check()
        page.screenshot(path=shots / "subscriber-add.png", full_page=True)
        page.get_by_role("button", name="Add subscriber").click()
        page.get_by_role("status").filter(has_text="Subscriber added.").wait_for()
        page.get_by_role("heading", name="ana.lopez@coop.example").wait_for()

        # Edited: a name and a time zone.
        page.get_by_label("Name").fill("Ana López García")
        page.get_by_label("Time zone").fill("Europe/Madrid")
        page.get_by_role("button", name="Save changes").click()
        page.get_by_role("status").filter(has_text="Changes saved.").wait_for()
        assert page.get_by_label("Time zone").input_value() == "Europe/Madrid"
        page.screenshot(path=shots / "subscriber-edited.png", full_page=True)

        # Exported: the search's CSV, a download.
        page.goto(f"{base_url}/editor/subscribers?q=ana.lopez")
        with page.expect_download() as download:
            page.get_by_role("link", name="CSV", exact=True).click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert text.splitlines()[0].startswith("id,email,name")
        assert "ana.lopez@coop.example,Ana López García" in text

        # Erased, after the box is ticked (the browser refuses the form without it).
        page.get_by_role("link", name="ana.lopez@coop.example").click()
        page.get_by_role("button", name="Erase").click()
        assert page.get_by_role("heading", name="ana.lopez@coop.example").is_visible()
        page.get_by_label("Erase everything about this person").check()
        page.screenshot(path=shots / "subscriber-erase-confirm.png", full_page=True)
        page.get_by_role("button", name="Erase").click()
        page.get_by_role("status").filter(has_text="Erased.").wait_for()
        page.screenshot(path=shots / "subscriber-erased.png", full_page=True)
        page.goto(f"{base_url}/editor/suppressions")
        page.get_by_text("erased person (hash)").wait_for()
        assert "ana.lopez" not in page.content()
        assert page.blocked == [] and page.console_errors == []
        page.context.close()
