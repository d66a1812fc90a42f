"""An issue from its news to its report, in a real browser (Debian's Chromium via Playwright):
collected from a feed this test serves on 127.0.0.1, composed, an item edited and one added by
hand, previewed at 600 and 375 px without horizontal scroll, proofed to an SMTP server on
127.0.0.1, approved, scheduled in the list's time zone, sent by the due check (its clock set to
the scheduled time), followed live on the issue page, and read in the delivery report.

The browser and the screenshot folder come from tests/e2e/conftest.py; the screenshots are
named issue-flow-*.png.
"""

from __future__ import annotations

import threading
from datetime import UTC, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.config import get_settings, reset_settings
from digest.db import session_factory
from digest.models import Delivery, Issue, Source, utcnow
from digest.sources.collect import collect_sources
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import add_subscriber
from tests.accounts import grant
from tests.e2e.test_editor_browser import PHONE, WIDE, editor_page, editor_server
from tests.fixtures.sources.server import serving
from tests.processes import wait_until
from tests.smtp_server import RecordingHandler, SMTPServer

READERS = 20
BATCH = 5
BOUNCE = "gone@example.org"
STORIES = [
    "Harbour bridge reopens after repairs",
    "Library extends its weekend hours",
    "New bus line links the two campuses",
    "Community garden wins a city prize",
]


def rss(now: Any) -> str:
    entries = "".join(
        f"<item><title>{title}</title><link>http://news.test/story/{i}</link>"
        f"<guid>story-{i}</guid><pubDate>{format_datetime(now - timedelta(days=i + 1))}</pubDate>"
        f"<description>&lt;p&gt;What happened: {title.lower()}.&lt;/p&gt;</description></item>"
        for i, title in enumerate(STORIES)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Town hall</title>'
        f"<link>http://news.test/</link>{entries}</channel></rss>"
    )


class Gate:
    """The relay's answers: a permanent failure for BOUNCE, and, once armed, a hold on every
    recipient after the first batch until opened, so the page is seen mid-send."""

    def __init__(self) -> None:
        self.armed = False
        self.accepted = 0
        self.open = threading.Event()
        self.lock = threading.Lock()

    def reply(self, address: str) -> str | None:
        if address == BOUNCE:
            return "550 5.1.1 <gone@example.org>: no such user"
        if not self.armed:
            return None
        with self.lock:
            self.accepted += 1
            hold = self.accepted > BATCH
        if hold:  # blocks the relay's loop: the sender waits on its reply
            self.open.wait(timeout=20)
        return None


WIDTHS = "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"


def no_horizontal_scroll(page: Any, title: str) -> tuple[int, int]:
    frame = page.locator(f"iframe[title^='{title}']").element_handle().content_frame()
    frame.wait_for_load_state()
    widths: tuple[int, int] = tuple(frame.evaluate(WIDTHS))
    assert widths[0] <= widths[1], (title, widths)
    return widths


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Any:
    gate = Gate()
    with SMTPServer(RecordingHandler(reply=gate.reply)) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", "smtp")
        monkeypatch.setenv("DIGEST_SMTP_PORT", str(server.port))
        monkeypatch.setenv("DIGEST_SMTP_CONNECTIONS", "1")
        monkeypatch.setenv("DIGEST_BATCH_SIZE", str(BATCH))
        monkeypatch.setenv("DIGEST_MAX_ATTEMPTS", "1")
        reset_settings()
        server.gate = gate
        yield server
        gate.open.set()
    reset_settings()


def test_collect_compose_edit_preview_proof_approve_schedule_send_report(
    browser: Any, db_url: str, session: Session, relay: Any, shots: Path
) -> None:
    grant(db_url)
    now = utcnow()
    with serving() as news:
        feed = news.add(
            "/feed.xml", rss(now.replace(tzinfo=UTC)), content_type="application/rss+xml"
        )
        lst = create_list(
            session,
            slug="town",
            name="Town news",
            timezone="Europe/Paris",
            postal_address="1 Town Square, 75001 Paris",
        )
        source = Source(name="Town hall", url=feed, kind="feed")
        session.add(source)
        session.flush()
        link_source(session, lst.id, source.id)
        for i in range(READERS):
            add_subscriber(session, lst.id, f"reader{i:02}@example.org", name=f"Reader {i}")
        add_subscriber(session, lst.id, BOUNCE)
        session.commit()
        collected = collect_sources(session_factory(db_url), [source.id], settings=get_settings())
        assert collected[0].new == len(STORIES), collected

    with editor_server() as base_url:
        page = editor_page(browser, WIDE, base_url)
        page.goto(f"{base_url}/editor/lists")
        page.get_by_role("button", name="Compose the next issue of Town news").click()
        page.get_by_role("status").filter(has_text="New draft composed").wait_for()
        issue_id = int(page.url.split("/issues/")[1].split("?")[0])
        frame = page.frame_locator("iframe[title^='Desktop preview']")
        frame.get_by_text(STORIES[0]).first.wait_for()
        page.screenshot(path=shots / "issue-flow-1-draft.png", full_page=True)

        # Edit the first item: this issue's own title and summary.
        page.get_by_text(f"Edit title and summary: {STORIES[0]}").click()
        item = page.locator("li.item").first
        item.get_by_label("Title").fill("Harbour bridge open again <for everyone>")
        item.get_by_label("Summary").fill("Cars from Monday, bikes already.\n\nSee the map.")
        item.get_by_role("button", name="Save item").click()
        page.get_by_role("status").filter(has_text="Item saved").wait_for()
        frame = page.frame_locator("iframe[title^='Desktop preview']")
        frame.get_by_text("Harbour bridge open again <for everyone>").wait_for()
        frame.get_by_text("See the map.").wait_for()

        # Add one by hand.
        page.get_by_text("Add an item by hand").click()
        page.locator("#new-title").fill("Volunteers wanted for the spring clean-up")
        page.locator("#new-url").fill("https://volunteer.example.org/spring")
        page.locator("#new-summary").fill("Sign up before Friday.")
        page.locator("#new-group").fill("From the editor")
        page.get_by_role("button", name="Add item").click()
        page.get_by_role("status").filter(has_text="Item added").wait_for()
        frame = page.frame_locator("iframe[title^='Desktop preview']")
        frame.get_by_text("Volunteers wanted for the spring clean-up").wait_for()
        frame.get_by_text("From the editor").wait_for()

        # The preview at 600 and 375 px: nothing wider than the frame.
        assert no_horizontal_scroll(page, "Desktop preview")[1] == 600
        page.get_by_role("link", name="Mobile").click()
        page.frame_locator("iframe[title^='Mobile preview']").get_by_text(
            "Volunteers wanted"
        ).wait_for()
        assert no_horizontal_scroll(page, "Mobile preview")[1] == 375
        page.screenshot(path=shots / "issue-flow-2-mobile-preview.png", full_page=True)

        # A proof to the relay on 127.0.0.1.
        page.get_by_label("Addresses").fill("editor@example.org")
        page.get_by_role("button", name="Send proof").click()
        page.get_by_role("status").filter(has_text="Proof sent to 1 address").wait_for()
        assert [m.rcpt_tos for m in relay.messages] == [["editor@example.org"]]
        assert b"[Proof]" in relay.messages[0].data

        page.get_by_role("button", name="Approve issue").click()
        page.get_by_role("status").filter(has_text="Approved").wait_for()

        # Scheduled in Paris time, two minutes ahead (minute precision, as the field shows).
        paris = ZoneInfo("Europe/Paris")
        local = (now + timedelta(minutes=2)).replace(tzinfo=UTC).astimezone(paris)
        page.get_by_label("Send at (Europe/Paris)").fill(f"{local:%Y-%m-%dT%H:%M}")
        page.get_by_role("button", name="Schedule send").click()
        page.get_by_role("status").filter(has_text="Scheduled.").wait_for()
        page.get_by_text(f"Scheduled for {local:%Y-%m-%d %H:%M %Z}").first.wait_for()
        page.screenshot(path=shots / "issue-flow-3-scheduled.png", full_page=True)
        session.expire_all()
        send_at = session.get_one(Issue, issue_id).send_at
        assert send_at == local.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0)
        page.goto(f"{base_url}/editor/issues")
        page.get_by_text(f"Scheduled for {local:%Y-%m-%d %H:%M %Z}").wait_for()

        # The due check, its clock at the scheduled time, sends on the one send path; the
        # relay holds everything after the first batch until the page has been looked at.
        from digest.cli.scheduling import send_due

        relay.gate.armed = True
        sender = threading.Thread(target=send_due, args=(get_settings(), send_at), daemon=True)
        sender.start()

        def sent() -> int:
            with session_factory(db_url)() as s:
                query = select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
                return int(s.scalar(query.where(Delivery.issue_id == issue_id)) or 0)

        wait_until(lambda: sent() >= BATCH - 1, 30, what="the first batch")
        page.goto(f"{base_url}/editor/issues/{issue_id}#progress")
        panel = page.locator("#progress")
        assert panel.get_attribute("data-poll")
        before = panel.locator("[data-live]").inner_text()
        assert f"of {READERS + 1} done" in before
        page.evaluate("() => { window.stillHere = true; }")
        page.screenshot(path=shots / "issue-flow-4-sending.png", full_page=True)

        relay.gate.open.set()
        panel.locator("[data-live]").filter(
            has_text=f"Sent: {READERS} delivered, 1 failed."
        ).wait_for(timeout=30_000)
        assert page.evaluate("() => window.stillHere === true")  # updated in place, no reload
        bar = panel.locator("progress")
        assert bar.get_attribute("value") == bar.get_attribute("max")
        assert panel.locator('[data-count="sent"]').inner_text() == str(READERS)
        sender.join(timeout=30)
        assert not sender.is_alive()
        page.screenshot(path=shots / "issue-flow-5-sent.png", full_page=True)

        # The delivery report: who got it, who failed and why.
        page.get_by_role("link", name="Delivery report").first.click()
        page.get_by_role("heading", name="Delivery report").wait_for()
        page.get_by_role("link", name="Failed 1").click()
        page.get_by_role("cell", name=BOUNCE, exact=True).wait_for()
        page.get_by_text("550 5.1.1").first.wait_for()
        page.get_by_role("link", name=f"Got it {READERS}").click()
        page.get_by_label("Address contains").fill("reader07")
        page.get_by_role("button", name="Filter").click()
        page.get_by_role("cell", name="reader07@example.org", exact=True).wait_for()
        assert page.get_by_role("cell", name="reader08@example.org").count() == 0

        # Someone joins; the report offers the same issue to them, after a confirmation.
        add_subscriber(session, lst.id, "newcomer@example.org")
        session.commit()
        page.goto(f"{base_url}/editor/issues/{issue_id}/report?kind=missing")
        page.get_by_role("cell", name="newcomer@example.org", exact=True).wait_for()
        page.screenshot(path=shots / "issue-flow-6-report.png", full_page=True)
        page.get_by_label("Send this same issue to the 1 who have not got it").check()
        page.get_by_role("button", name="Send to those who have not got it").click()
        page.get_by_role("status").filter(
            has_text="Sending to those who have not got it"
        ).wait_for()
        wait_until(lambda: sent() == READERS + 1, 30, what="the newcomer's copy")
        page.goto(f"{base_url}/editor/issues/{issue_id}/report")
        page.get_by_role("link", name=f"Got it {READERS + 1}").wait_for()
        page.screenshot(path=shots / "issue-flow-7-report-after.png", full_page=True)
        assert page.blocked == [] and page.console_errors == []
        page.context.close()

        # The report and the issue on a phone: no page wider than the screen.
        page = editor_page(browser, PHONE, base_url)
        for path, shot in (("/report?kind=failed", "8-report-phone"), ("", "9-issue-phone")):
            page.goto(f"{base_url}/editor/issues/{issue_id}{path}")
            page.wait_for_load_state()
            widths = page.evaluate(WIDTHS)
            wide = page.evaluate(
                "() => [...document.querySelectorAll('body *')].filter(e => "
                "e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
                ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
            )
            assert widths[0] <= widths[1], (path, widths, wide)
            if "failed" in path:  # the reason is read on the screen, not by scrolling a table
                reason = page.locator("td").filter(has_text="550 5.1.1 <gone@example.org>")
                # The page scrolled down to it, never a table sideways (as Playwright's own
                # scrolling into view would do, hiding the defect).
                reason.evaluate("c => scrollTo(0, c.getBoundingClientRect().top + scrollY - 8)")
                box = reason.bounding_box()
                screen = page.viewport_size
                assert box is not None and box["x"] >= 0 and box["y"] >= 0, box
                assert box["x"] + box["width"] <= screen["width"], (box, screen)
                assert box["y"] + box["height"] <= screen["height"], (box, screen)
            page.screenshot(path=shots / f"issue-flow-{shot}.png", full_page=True)
        assert page.blocked == [] and page.console_errors == []
        page.context.close()

    recipients = sorted(r for m in relay.messages for r in m.rcpt_tos)
    assert recipients.count("newcomer@example.org") == 1
    assert len(recipients) == 1 + READERS + 1  # the proof, the readers, the newcomer
