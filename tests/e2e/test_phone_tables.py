"""The editor's wide tables on a 375 px phone, in a real browser (Debian's Chromium): each
table's rows turn into blocks under the narrow breakpoint, so no page scrolls sideways and no
cell (an address, a date, a failure reason) lies outside the screen, even inside a table
that could scroll on its own. Screenshots as tests/e2e/conftest.py keeps them
(phone-table-*.png)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from digest.models import AuditEntry, Source, SuppressionReason, utcnow
from digest.subscribers.lists import create_list, link_source
from digest.subscribers.service import add_subscriber
from digest.subscribers.suppression import suppress
from tests.accounts import grant
from tests.e2e.test_editor_browser import PHONE, editor_page, editor_server

# Cells whose right edge passes the viewport's, with the document's own widths.
OUTSIDE = """() => {
  const width = document.documentElement.clientWidth;
  const cells = [...document.querySelectorAll('table td')]
    .filter(c => c.getClientRects().length)
    .map(c => [c.textContent.trim().slice(0, 40), c.getBoundingClientRect()]);
  return {
    scroll: [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth],
    cells: cells.length,
    outside: cells.filter(([, r]) => r.left < -1 || r.right > width + 1)
      .map(([t, r]) => [t, Math.round(r.left), Math.round(r.right)]),
  };
}"""


def off_screen(page: Any) -> dict[str, Any]:
    """What of the page passes the screen's edge: the document's widths when it scrolls
    sideways, and the cells outside the viewport (a table that scrolls on its own hides them)."""
    seen: dict[str, Any] = page.evaluate(OUTSIDE)
    assert seen["cells"] > 0, (page.url, "no table on the page")
    wrong = {k: seen[k] for k in ("outside",) if seen[k]}
    if seen["scroll"][0] > seen["scroll"][1]:
        wrong["scroll"] = seen["scroll"]
    return wrong


def test_the_wide_tables_fit_a_phone(
    browser: Any, db_url: str, session: Session, shots: Path
) -> None:
    grant(session)
    lst = create_list(session, slug="town", name="Town news", timezone="Europe/Paris")
    source = Source(
        name="Town hall press releases",
        url="https://www.town-hall.example.org/press/releases/latest-news-and-announcements.xml",
        kind="feed",
        last_error="HTTP 503 Service Unavailable from www.town-hall.example.org after 3 tries",
    )
    session.add(source)
    session.flush()
    link_source(session, lst.id, source.id)
    for i in range(3):
        add_subscriber(
            session,
            lst.id,
            f"a.rather.long.address.{i}@subscribers.example.org",
            name=f"Reader {i}",
        )
    suppress(
        session,
        "bounced.long.address@mail.example.org",
        SuppressionReason.BOUNCE,
        "550 5.1.1 <bounced.long.address@mail.example.org>: Recipient address rejected",
    )
    session.add(
        AuditEntry(
            at=utcnow() - timedelta(minutes=5),
            actor="publisher.with.a.long.name@newsroom.example.org",
            action="issue.approve",
            target_kind="issue",
            target_id="12",
            detail={"subject": "Harbour bridge reopens after repairs", "items": 7},
            address="2001:db8:85a3::8a2e:370:7334",
        )
    )
    session.commit()

    with editor_server() as base_url:
        page = editor_page(browser, PHONE, base_url)
        wrong = {}
        for path, name in (
            ("/editor/subscribers?q=rather", "subscribers"),
            ("/editor/audit", "audit"),
            ("/editor/suppressions", "suppressions"),
            ("/editor/sources", "sources"),
        ):
            page.goto(base_url + path)
            page.wait_for_load_state()
            page.screenshot(path=shots / f"phone-table-{name}.png", full_page=True)
            if found := off_screen(page):
                wrong[path] = found
        assert wrong == {}
        assert page.blocked == [] and page.console_errors == []
        page.context.close()
