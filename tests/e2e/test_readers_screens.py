"""One issue in French at 375 px and in Arabic, right to left, in Debian's Chromium (issue 11).

The issue is made the way readers get it: listing pages of our own making (the seed's format,
tests/integration/test_readers_editions.py) collected, composed and approved from the CLI;
each edition's frozen variant, filled in for a sample reader, is served from 127.0.0.1 (every
other request is aborted). The screenshots are kept in build/screenshots/readers/ at the
repository root (the README says so), and copied to $DIGEST_TEST_SCREENSHOTS when set.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from digest.config import reset_settings
from digest.db import session_factory
from digest.issues.preview import personalise_for_preview
from digest.models import IssueVariant
from digest.placeholders import Slots
from tests.fixtures.sources.server import serving
from tests.integration.test_readers_editions import PAGES, SELECTORS, cli, listing_page

KEPT = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "readers"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _editions(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """The frozen HTML of each edition's full variant, filled in for a sample reader."""
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    reset_settings()
    with serving() as site:
        for lang, (path, _, _) in PAGES.items():
            site.add(path, listing_page(lang))
        cli(capsys, "lists", "create", "sse", "--name", "SSE News", "--lookback-days", "2000")
        for path, _, _ in PAGES.values():
            cli(capsys, "sources", "add", site.url(path), "--kind", "html", *SELECTORS,
                "--list", "sse")  # fmt: skip
        cli(capsys, "lists", "readers", "sse", "--editions", "fr,es,ar")
        for email, lang in (("benoit@example.org", "fr"), ("dalia@example.org", "ar")):
            cli(capsys, "subscribers", "add", email, "--list", "sse")
            cli(capsys, "subscribers", "prefs", email, "--list", "sse", "--language", lang)
        cli(capsys, "collect")
    cli(capsys, "issues", "compose", "sse")
    cli(capsys, "issues", "approve", "1")
    with session_factory(sqlite_url)() as session:
        variants = session.scalars(select(IssueVariant).where(IssueVariant.topic_ids == ""))
        return {
            v.language: personalise_for_preview(v.html or "", Slots(v.slot_marker or ""))
            for v in variants
        }


@pytest.mark.service
def test_french_at_375_px_and_arabic_right_to_left(
    browser: Any,
    served: tuple[str, Path],
    shots: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, root = served
    html = _editions(sqlite_url, monkeypatch, capsys)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    found = {}
    for lang, width in (("fr", 375), ("ar", 375), ("ar", 600)):
        (root / f"issue-{lang}.html").write_text(html[lang], encoding="utf-8")
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.route("**/*", only_local)
        page.goto(f"{base}/issue-{lang}.html", wait_until="load")
        found[(lang, width)] = page.evaluate(
            """() => ({
                scroll: document.documentElement.scrollWidth,
                lang: document.documentElement.lang,
                dir: getComputedStyle(document.querySelector('h1')).direction,
                text: document.body.innerText,
            })"""
        )
        page.screenshot(path=str(shots / f"issue-{lang}-{width}.png"), full_page=True)
        page.close()
    assert outside == []
    fr, ar = found[("fr", 375)], found[("ar", 375)]
    assert fr["lang"] == "fr" and fr["dir"] == "ltr" and fr["scroll"] <= 375
    assert "Lire la suite" in fr["text"] and "12 février 2024" in fr["text"]
    assert "Quatre modules sur l’ESS désormais disponibles" in fr["text"]
    assert ar["lang"] == "ar" and ar["dir"] == "rtl" and ar["scroll"] <= 375
    assert "اقرأ المزيد" in ar["text"]
    assert found[("ar", 600)]["scroll"] <= 600
    for name in ("issue-fr-375.png", "issue-ar-375.png", "issue-ar-600.png"):
        assert (shots / name).stat().st_size > 10_000
    KEPT.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shots, KEPT, dirs_exist_ok=True)
