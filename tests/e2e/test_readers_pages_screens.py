"""The public pages in the reader's language, in Debian's Chromium (issue 11): the sign-up
page and an issue's view online in French at 375 px (a browser that asks for French), and in
Arabic, right to left (computed direction), each the reader's own copy. Screenshots are kept
as the conftest keeps them (test-output/screenshots/) and in build/screenshots/readers/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from digest.config import reset_settings
from digest.web.app import create_app
from tests.e2e.test_readers_screens import KEPT
from tests.e2e.test_web_browser import PHONE, new_page
from tests.fixtures.sources.server import serving
from tests.flows import maildir_copies
from tests.integration.test_readers_editions import PAGES, SELECTORS, cli, listing_page
from tests.integration.test_web_http import live_server

READERS = {"benoit@example.org": "fr", "dalia@example.org": "ar"}
LOOK = """() => ({
    lang: document.documentElement.lang,
    dir: getComputedStyle(document.querySelector('h1') || document.body).direction,
    scroll: document.documentElement.scrollWidth,
    text: document.body.innerText,
})"""


def _view_paths(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """An issue in editions fr and ar sent to one reader of each: their view-online paths."""
    monkeypatch.setenv("DIGEST_DATABASE_URL", sqlite_url)
    reset_settings()
    with serving() as site:
        for lang in ("en", "fr", "ar"):
            site.add(PAGES[lang][0], listing_page(lang))
        cli(capsys, "lists", "create", "sse", "--name", "SSE News", "--lookback-days", "2000")
        for lang in ("en", "fr", "ar"):
            cli(capsys, "sources", "add", site.url(PAGES[lang][0]), "--kind", "html",
                *SELECTORS, "--list", "sse")  # fmt: skip
        cli(capsys, "lists", "readers", "sse", "--editions", "fr,ar")
        for email, lang in READERS.items():
            cli(capsys, "subscribers", "add", email, "--list", "sse")
            cli(capsys, "subscribers", "prefs", email, "--list", "sse", "--language", lang)
        cli(capsys, "collect")
    cli(capsys, "issues", "compose", "sse")
    cli(capsys, "issues", "approve", "1")
    cli(capsys, "issues", "send", "1")
    paths = {}
    for copy in maildir_copies(Path("outbox")):
        body = copy.message.get_body(("html",))
        assert body is not None
        found = re.search(r'href="https?://[^"/]+(/v/[^"]+)"', str(body.get_content()))
        assert found is not None
        paths[READERS[copy.envelope_to]] = found.group(1)
    return paths


@pytest.mark.service
def test_sign_up_and_view_online_in_french_at_375_px_and_in_arabic(
    browser: Any,
    shots: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    views = _view_paths(sqlite_url, monkeypatch, capsys)
    found: dict[str, dict[str, Any]] = {}
    with live_server(create_app()) as base:
        for lang, locale in (("fr", "fr-FR"), ("ar", "ar-EG")):
            page = new_page(browser, PHONE, locale=locale)  # its Accept-Language
            page.goto(f"{base}/s/sse")
            found[f"signup-{lang}"] = page.evaluate(LOOK)
            page.screenshot(path=str(shots / f"signup-{lang}-375.png"), full_page=True)
            page.goto(base + views[lang])
            found[f"view-{lang}"] = page.evaluate(LOOK)
            page.screenshot(path=str(shots / f"view-online-{lang}-375.png"), full_page=True)
            assert page.blocked == []
            page.context.close()
        # The switcher is plain links: from the French page to the Arabic one, no script.
        page = new_page(browser, PHONE, locale="fr-FR", java_script_enabled=False)
        page.goto(f"{base}/s/sse")
        page.get_by_role("link", name="العربية").click()
        page.wait_for_url("**/s/sse?lang=ar")
        switched = page.evaluate("() => document.documentElement.getAttribute('dir')")
        page.context.close()

    signup, view = found["signup-fr"], found["view-fr"]
    assert (signup["lang"], signup["dir"]) == ("fr", "ltr") and signup["scroll"] <= 375
    assert "S’abonner à SSE News" in signup["text"] and "Adresse e-mail" in signup["text"]
    assert (view["lang"], view["dir"]) == ("fr", "ltr") and view["scroll"] <= 375
    assert "Lire la suite" in view["text"] and "Quatre modules" in view["text"]
    assert "Four modules" not in view["text"]  # their edition, not the whole issue
    signup, view = found["signup-ar"], found["view-ar"]
    assert (signup["lang"], signup["dir"]) == ("ar", "rtl") and signup["scroll"] <= 375
    assert "اشترك في SSE News" in signup["text"]
    assert (view["lang"], view["dir"]) == ("ar", "rtl") and view["scroll"] <= 375
    assert "اقرأ المزيد" in view["text"] and "Quatre modules" not in view["text"]
    assert switched == "rtl"
    for name in ("signup-fr", "view-online-fr", "signup-ar", "view-online-ar"):
        assert (shots / f"{name}-375.png").stat().st_size > 10_000
    KEPT.mkdir(parents=True, exist_ok=True)
    shutil.copytree(shots, KEPT, dirs_exist_ok=True)
